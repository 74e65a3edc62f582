"""Sweeper function: EventBridge Scheduler -> marks deliveries nobody is acting on.

A RECEIVED record older than STALE_RECEIVED_SECONDS never reached a dispatcher (NOT_STARTED); an
IN_FLIGHT record whose lease is over lost its worker mid-delivery (ABANDONED, unknown result).
Both become FAILED_RETRYABLE with that code, so they show up for an operator instead of sitting
unnoticed (`OutcomeStore.sweep`; docs/operations.md, "Runbook: stalled records").
"""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from orderbridge import wiring
from orderbridge.models.outcome import OutcomeStatus
from orderbridge.settings import SweeperEnvironment

logger = Logger()
tracer = Tracer()
metrics = Metrics()
# Read once per execution environment; a missing or bad variable is a SettingsError naming it.
env = SweeperEnvironment.from_environ()
store = wiring.outcome_store(env)
stale_received = env.stale_received


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(scheduled_time=(event or {}).get("scheduled_time"))
    marked = store.sweep(received_older_than=stale_received)
    codes: dict[str, int] = {}
    for outcome in marked:
        code = "NOT_STARTED" if outcome.status is OutcomeStatus.RECEIVED else "ABANDONED"
        codes[code] = codes.get(code, 0) + 1
        logger.warning(
            "stalled delivery marked FAILED_RETRYABLE",
            extra={
                "tracking_id": outcome.tracking_id,
                "destination": outcome.destination,
                "error_code": code,
            },
        )
    # Every run, zero included: an alarm on it then has data, not gaps.
    metrics.add_metric(name="StalledDeliveries", unit=MetricUnit.Count, value=len(marked))
    return {"marked": len(marked), "codes": codes}
