"""The cold-start baseline: a Lambda handler that imports only boto3 and answers.

Like any real handler it makes one client at init (the usual module-level `boto3.client(...)`),
but it calls nothing and answers either trigger: an SQS batch with no failures, an API Gateway
proxy event with 202. `bench/cold_start.py` compares the real functions against it.
"""

import boto3

sqs = boto3.client("sqs")


def lambda_handler(event, context):
    if "Records" in event:
        return {"batchItemFailures": []}
    return {"statusCode": 202, "headers": {"Content-Type": "application/json"}, "body": "{}"}
