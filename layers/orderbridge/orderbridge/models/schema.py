"""Prints the JSON Schema of the queue event (`python -m orderbridge.models.schema`)."""

import json

from orderbridge.models.event import OrderEvent


def order_event_schema() -> dict[str, object]:
    schema = OrderEvent.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://orderbridge.dev/schemas/order-event.schema.json"
    return schema


if __name__ == "__main__":
    print(json.dumps(order_event_schema(), indent=2, sort_keys=True))
