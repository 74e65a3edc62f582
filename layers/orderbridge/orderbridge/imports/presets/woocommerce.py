"""WooCommerce's order export (the Order Export plugin's default CSV): one row per order, items in
repeated column groups `line_item_1`, `line_item_2`, ... each `name:...|product_id:...|sku:...|
quantity:1|total:13.00|sub_total:13.00` (`sub_total`: all units, before discounts). Cancelled and
failed orders are left out; `order_total` is checked.

Identity: the order is WooCommerce's order id (`order_id`), as the webhook and the REST feed name
it; `order_number` may differ (a sequential-order-number plugin) and is kept as
`metadata.woocommerce_number` (the webhook's key). A file without the `order_id` column falls back
to `order_number`, which the webhook never uses: such a file cannot be matched with the webhook."""

#: Where the human order number goes: the key the webhook mapping uses too.
ORDER_NUMBER = "metadata.woocommerce_number"

FIELDS = {
    "external_order_id": ["order_id", "order_number"],
    ORDER_NUMBER: "order_number",
    "placed_at": "order_date",
    "currency": "order_currency",
    "shipping_total": "shipping_total",
    "shipping_tax": "shipping_tax_total",
    "total_tax": "tax_total",
    "order_discount": "discount_total",
    "total": "order_total",
    "payment_method": "payment_method_title",
    "notes": "customer_note",
    "metadata.status": "status",
    "buyer.email": "billing_email",
    "buyer.first_name": "billing_first_name",
    "buyer.last_name": "billing_last_name",
    "buyer.phone": "billing_phone",
    "billing_address.first_name": "billing_first_name",
    "billing_address.last_name": "billing_last_name",
    "billing_address.company": "billing_company",
    "billing_address.address1": "billing_address_1",
    "billing_address.address2": "billing_address_2",
    "billing_address.city": "billing_city",
    "billing_address.province": "billing_state",
    "billing_address.zip": "billing_postcode",
    "billing_address.country": "billing_country",
    "billing_address.phone": "billing_phone",
    "shipping_address.first_name": "shipping_first_name",
    "shipping_address.last_name": "shipping_last_name",
    "shipping_address.company": "shipping_company",
    "shipping_address.address1": "shipping_address_1",
    "shipping_address.address2": "shipping_address_2",
    "shipping_address.city": "shipping_city",
    "shipping_address.province": "shipping_state",
    "shipping_address.zip": "shipping_postcode",
    "shipping_address.country": "shipping_country",
    "shipping_address.phone": "shipping_phone",
    # keys inside an item
    "lines.name": "name",
    "lines.sku": "sku",
    "lines.quantity": "quantity",
    "lines.gross": "sub_total",
}

MAPPING = {
    "fields": FIELDS,
    "line_cells": {"pattern": "line_item_{n}", "pairs": "|", "key_value": ":", "key": "[a-z_]+"},
    "optional": sorted(
        {
            c
            for t, v in FIELDS.items()
            if not t.startswith("lines.")
            for c in ([v] if isinstance(v, str) else v)
        }
        - {"order_number"}
    ),
    "formats": {
        "dates": ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"],
        "placeholders": ["-"],
        "country_names": True,
    },
    "skip": [{"column": "status", "values": ["cancelled", "failed", "wc-cancelled", "wc-failed"]}],
}
