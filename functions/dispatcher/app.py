"""Dispatcher function: SQS batch in, provider orders out, partial batch failures reported."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from orderbridge import wiring
from orderbridge.settings import DispatcherEnvironment

logger = Logger()
tracer = Tracer()
metrics = Metrics()
# A batch whose every record goes back to retry is routine (a 429, a provider down), not an error
# of the function: its records are reported as failures, the invocation itself succeeds.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
# Read once per execution environment; a missing or bad variable is a SettingsError naming it.
dispatcher = wiring.dispatcher(DispatcherEnvironment.from_environ())


def record_handler(record: SQSRecord, lambda_context: LambdaContext | None = None) -> None:
    """One record. Not wrapped in Tracer.capture_method: it logs every exception at ERROR with a
    traceback, and a record sent back to retry later is routine; the dispatcher logs it itself.
    The context's remaining time decides whether a record is started at all."""
    remaining = lambda_context.get_remaining_time_in_millis if lambda_context is not None else None
    dispatcher.process(record, remaining_ms=remaining)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
