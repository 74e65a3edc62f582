"""Old names of the environment variables and their defaults, derived from `orderbridge.settings`.

Nothing is declared here any more: each variable's name, type, default and bounds live once, on its
field in `orderbridge.settings` (one model per function). These names are kept for the modules that
still import them (local run, operator CLI, bench, tests); new code reads the settings models.
"""

from typing import Final

from orderbridge.settings import DispatcherEnvironment as _Dispatcher
from orderbridge.settings import FunctionEnvironment as _Function
from orderbridge.settings import ImporterEnvironment as _Importer
from orderbridge.settings import IntakeEnvironment as _Intake
from orderbridge.settings import PipelineEnvironment as _Pipeline
from orderbridge.settings import SweeperEnvironment as _Sweeper
from orderbridge.settings import default as _default
from orderbridge.settings import variable as _variable

# Resources (set by template.yaml; by the local run for moto)
OUTCOME_TABLE_ENV: Final = _variable(_Function, "outcome_table")
ORDER_QUEUE_URL_ENV: Final = _variable(_Pipeline, "order_queue_url")
DEAD_LETTER_QUEUE_URL_ENV: Final = _variable(_Dispatcher, "dead_letter_queue_url")
RATE_LIMIT_TABLE_ENV: Final = _variable(_Dispatcher, "rate_limit_table")
CONFIG_BUCKET_ENV: Final = _variable(_Pipeline, "config_bucket")
EVENT_PAYLOAD_BUCKET_ENV: Final = _variable(_Pipeline, "event_payload_bucket")
CONFIG_KEY_ENV: Final = _variable(_Pipeline, "config_key")
CONFIG_KEY_DEFAULT: Final = _default(_Pipeline, "config_key")

# Behaviour knobs
MAX_RECEIVE_COUNT_ENV: Final = _variable(_Dispatcher, "max_receive_count")
MAX_RECEIVE_COUNT_DEFAULT: Final = _default(_Dispatcher, "max_receive_count")
RETRY_BASE_DELAY_ENV: Final = _variable(_Dispatcher, "retry_base_delay_seconds")
RETRY_BASE_DELAY_DEFAULT: Final = _default(_Dispatcher, "retry_base_delay_seconds")
RETRY_MAX_DELAY_ENV: Final = _variable(_Dispatcher, "retry_max_delay_seconds")
RETRY_MAX_DELAY_DEFAULT: Final = _default(_Dispatcher, "retry_max_delay_seconds")
LEASE_SECONDS_ENV: Final = _variable(_Dispatcher, "delivery_lease_seconds")
LEASE_SECONDS_DEFAULT: Final = _default(_Dispatcher, "delivery_lease_seconds")
PROVIDER_TIMEOUT_ENV: Final = _variable(_Dispatcher, "provider_timeout_seconds")
PROVIDER_TIMEOUT_DEFAULT: Final = _default(_Dispatcher, "provider_timeout_seconds")
OUTCOME_TTL_DAYS_ENV: Final = _variable(_Function, "outcome_ttl_days")
OUTCOME_TTL_DAYS_DEFAULT: Final = _default(_Function, "outcome_ttl_days")
WEBHOOK_TOLERANCE_ENV: Final = _variable(_Intake, "webhook_tolerance_seconds")
WEBHOOK_TOLERANCE_DEFAULT: Final = _default(_Intake, "webhook_tolerance_seconds")
MAX_BODY_BYTES_ENV: Final = _variable(_Intake, "max_body_bytes")
MAX_BODY_BYTES_DEFAULT: Final = _default(_Intake, "max_body_bytes")
CONFIG_MAX_AGE_ENV: Final = _variable(_Pipeline, "config_max_age_seconds")
CONFIG_MAX_AGE_DEFAULT: Final = _default(_Pipeline, "config_max_age_seconds")
SECRET_MAX_AGE_ENV: Final = _variable(_Pipeline, "secret_max_age_seconds")
SECRET_MAX_AGE_DEFAULT: Final = _default(_Pipeline, "secret_max_age_seconds")
SIGNING_SECRET_REFRESH_ENV: Final = _variable(_Intake, "signing_secret_refresh_seconds")
SIGNING_SECRET_REFRESH_DEFAULT: Final = _default(_Intake, "signing_secret_refresh_seconds")
# Secret ids: their defaults under the default RESOURCE_PREFIX (`orderbridge`)
CLIENT_HASH_SECRET_ENV: Final = _variable(_Intake, "client_hash_secret_id")
CLIENT_HASH_SECRET_DEFAULT: Final = _default(_Intake, "client_hash_secret_id")
TRACKING_ID_KEY_SECRET_ENV: Final = _variable(_Pipeline, "tracking_id_key_secret_id")
TRACKING_ID_KEY_SECRET_DEFAULT: Final = _default(_Pipeline, "tracking_id_key_secret_id")
STALE_RECEIVED_SECONDS_ENV: Final = _variable(_Sweeper, "stale_received_seconds")
STALE_RECEIVED_SECONDS_DEFAULT: Final = _default(_Sweeper, "stale_received_seconds")
RATE_LIMIT_MAX_WAIT_ENV: Final = _variable(_Dispatcher, "rate_limit_max_wait_seconds")
RATE_LIMIT_MAX_WAIT_DEFAULT: Final = _default(_Dispatcher, "rate_limit_max_wait_seconds")
METRICS_NAMESPACE_ENV: Final = _variable(_Function, "metrics_namespace")
METRICS_NAMESPACE_DEFAULT: Final = _default(_Function, "metrics_namespace")
SERVICE_NAME: Final = _default(_Function, "service_name")

# Imports (the importer function; see docs/imports.md)
IMPORT_STATE_TABLE_ENV: Final = _variable(_Importer, "import_state_table")
IMPORT_BUCKET_ENV: Final = _variable(_Importer, "import_bucket")
IMPORT_SAFETY_MARGIN_ENV: Final = _variable(_Importer, "import_safety_margin_seconds")
IMPORT_SAFETY_MARGIN_DEFAULT: Final = _default(_Importer, "import_safety_margin_seconds")
IMPORT_CHUNK_ORDERS_ENV: Final = _variable(_Importer, "import_chunk_orders")
IMPORT_CHUNK_ORDERS_DEFAULT: Final = _default(_Importer, "import_chunk_orders")
