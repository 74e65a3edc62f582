"""What each function calls on AWS, declared once (issue 15: "no unused grant remains").

`GRANTS[function][(action, resource)]` names the places in the layer that make the call
(`Class.method` or `module.function`, the def whose body holds the boto3 call). tests/test_template.py
checks, from this one table:

* each function's policy in template.yaml grants exactly these pairs: every call is allowed and
  nothing is granted that no declared call needs;
* each named place exists and its body makes a call of that IAM action;
* every boto3 call in the layer is declared for some function or listed in `NOT_FROM_FUNCTIONS`
  (the operator CLI's), so a new call cannot be left out of this table unnoticed.

Resources are written as the template's resources reduce to (`resource_name` in the test):
a logical id, `<id>/<path>` for `${<id>.Arn}/<path>`, or `secret:<pattern>` for a secret ARN pattern.
`implicit:` places are no call of ours (S3's answer to a missing key depends on ListBucket).
"""

from __future__ import annotations

OUTCOME = "OutcomeTable"
RATE = "RateLimitTable"
STATE = "ImportStateTable"
CONFIG_OBJECT = "ConfigBucket/orderbridge.json"
EVENTS = "EventPayloadBucket/events/*"
CONFIG_READ = "S3ConfigProvider._get"
MISSING_CONFIG = "implicit:S3 answers NoSuchKey, not AccessDenied, for an unuploaded configuration"
SECRETS = "CredentialStore.get"  # Powertools' SecretsProvider: secretsmanager GetSecretValue

GRANTS: dict[str, dict[tuple[str, str], tuple[str, ...]]] = {
    "IntakeFunction": {
        ("dynamodb:PutItem", OUTCOME): (
            "OutcomeStore.record_received",
            "OutcomeStore.record_rejected",
            "OutcomeStore.record_skipped",
        ),
        ("dynamodb:GetItem", OUTCOME): ("OutcomeStore.get_one",),  # add_note; a checkout claim's conflict
        ("dynamodb:Query", OUTCOME): ("OutcomeStore.get",),  # status polls, duplicate posts (table only)
        ("dynamodb:UpdateItem", OUTCOME): (
            "OutcomeStore.add_note",
            "OutcomeStore.claim",  # checkout mode delivers while the buyer waits
            "OutcomeStore.finish",
        ),
        ("dynamodb:UpdateItem", RATE): ("DynamoDBRateLimiter.reserve",),  # form posts; checkout mode
        ("sqs:SendMessage", "OrderQueue"): ("IntakeService._enqueue",),
        ("s3:PutObject", EVENTS): ("EventCodec.encode",),
        ("s3:GetObject", CONFIG_OBJECT): (CONFIG_READ,),
        ("s3:ListBucket", "ConfigBucket"): (MISSING_CONFIG,),
        ("secretsmanager:GetSecretValue", "secret:${ResourcePrefix}/webhooks/*"): (SECRETS,),
        ("secretsmanager:GetSecretValue", "secret:${ResourcePrefix}/providers/*"): (SECRETS,),
        ("secretsmanager:GetSecretValue", "ClientHashKey"): (SECRETS,),
        ("secretsmanager:GetSecretValue", "TrackingIdKey"): (SECRETS,),
    },
    "DispatcherFunction": {
        ("dynamodb:GetItem", OUTCOME): ("OutcomeStore.get_one",),  # a claim's conflict
        ("dynamodb:PutItem", OUTCOME): ("OutcomeStore.record_rejected",),
        ("dynamodb:UpdateItem", OUTCOME): ("OutcomeStore.claim", "OutcomeStore.finish"),
        ("dynamodb:UpdateItem", RATE): ("DynamoDBRateLimiter.reserve",),
        ("sqs:ChangeMessageVisibility", "OrderQueue"): ("Dispatcher._set_visibility",),
        ("sqs:SendMessage", "OrderDeadLetterQueue"): ("Dispatcher._park",),
        ("sqs:SendMessage", "OrderQueue"): ("Dispatcher._requeue",),
        ("s3:GetObject", EVENTS): ("EventCodec.decode",),
        ("s3:GetObject", CONFIG_OBJECT): (CONFIG_READ,),
        ("s3:ListBucket", "ConfigBucket"): (MISSING_CONFIG,),
        ("secretsmanager:GetSecretValue", "TrackingIdKey"): (SECRETS,),
        ("secretsmanager:GetSecretValue", "secret:${ResourcePrefix}/providers/*"): (SECRETS,),
    },
    "ImporterFunction": {
        ("dynamodb:GetItem", STATE): ("ImportStateStore.read", "ImportStateStore.file_record"),
        ("dynamodb:PutItem", STATE): ("ImportStateStore.record_file",),
        ("dynamodb:UpdateItem", STATE): (
            "ImportStateStore.acquire",
            "ImportStateStore.release",
            "ImportStateStore.checkpoint",
        ),
        ("dynamodb:BatchGetItem", STATE): ("state.batch_get",),
        ("dynamodb:BatchWriteItem", STATE): ("state.batch_put",),
        ("dynamodb:BatchGetItem", OUTCOME): ("state.batch_get",),  # orders already known
        ("dynamodb:PutItem", OUTCOME): ("SummaryWriter.write",),  # run summaries
        ("sqs:SendMessage", "OrderQueue"): ("OrderSink._send_batch",),
        ("s3:GetObject", CONFIG_OBJECT): (CONFIG_READ,),
        ("s3:ListBucket", "ConfigBucket"): (MISSING_CONFIG,),
        ("s3:ListBucket", "ImportBucket"): ("ImportService._s3",),
        ("s3:GetObject", "ImportBucket/*"): ("ImportService._s3_opener",),
        ("s3:GetObjectTagging", "ImportBucket/*"): ("ImportService._tag",),
        ("s3:PutObjectTagging", "ImportBucket/*"): ("ImportService._tag",),
        ("s3:PutObject", EVENTS): ("EventCodec.encode",),
        ("secretsmanager:GetSecretValue", "secret:${ResourcePrefix}/imports/*"): (SECRETS,),
        ("secretsmanager:GetSecretValue", "TrackingIdKey"): (SECRETS,),
    },
    "SweeperFunction": {
        ("dynamodb:Query", "OutcomeTable/index/by-status"): ("OutcomeStore.list_by_status",),
        ("dynamodb:UpdateItem", OUTCOME): ("OutcomeStore.sweep",),
    },
}

#: boto3 calls in the layer that no function makes: the operator CLI's (orderbridge_ops), with its
#: own credentials.
NOT_FROM_FUNCTIONS: dict[str, str] = {
    "OutcomeStore.find_by_source_ref": "orderbridge outcomes find (by-source-ref index)",
    "OutcomeStore.reopen": "orderbridge retry",
    "OutcomeStore.resolve_review": "orderbridge review resolve",
    "OutcomeStore.adopt_legacy_review": "orderbridge review resolve (records from before review)",
    "SummaryWriter.history": "orderbridge imports history",
}
