"""Importer function: EventBridge Scheduler -> orders from S3 files and feeds -> the order queue."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from orderbridge import wiring
from orderbridge.imports.service import ImportTrigger
from orderbridge.imports.summary import RunStatus
from orderbridge.settings import ImporterEnvironment

logger = Logger()
tracer = Tracer()
metrics = Metrics()
# Read once per execution environment; a missing or bad variable is a SettingsError naming it.
service = wiring.import_service(ImporterEnvironment.from_environ())


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    trigger = ImportTrigger.model_validate(event or {})
    logger.append_keys(trigger=trigger.trigger, scheduled_time=trigger.scheduled_time)
    summaries = service.run_all(trigger, remaining_ms=context.get_remaining_time_in_millis)
    metrics.add_metric(name="ImportRuns", unit=MetricUnit.Count, value=len(summaries))
    failed = [s for s in summaries if s.status is RunStatus.FAILED]
    if failed:
        metrics.add_metric(name="ImportRunsFailed", unit=MetricUnit.Count, value=len(failed))
    return {"runs": [s.brief() for s in summaries]}
