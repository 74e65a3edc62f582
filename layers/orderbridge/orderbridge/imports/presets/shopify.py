"""Shopify's order export (Orders > Export, CSV): one row per line item; order-level columns on the
first row of an order only. `Created at` is `2024-05-01 09:58:12 +0000`; `Billing Name` is one
field; voided orders and cancelled ones (`Cancelled at` set) are left out. `Discount Amount` is the
order's whole discount; `Total` is checked against lines, discount, shipping and taxes.
European Excel re-saves it with `;`, decimal commas and Windows-1252: set the source's `delimiter`
and `encoding` and `formats: {"decimal": ",", "thousands": "."}`.

Identity: the order is Shopify's order `Id` (on an order's first row only), as the `orders/create`
webhook and the REST feed name it, so the same order arriving two ways is one order; an export
without the `Id` column falls back to `Name` (`#1001`), which the webhook never uses: such a file
cannot be matched with the webhook's orders. `Name` groups the rows and is kept as
`metadata.shopify_name` (the webhook's key)."""

#: Where the human order number (`#1001`) goes: the key the webhook mapping uses too.
ORDER_NAME = "metadata.shopify_name"

FIELDS = {
    "external_order_id": ["Id", "Name"],
    ORDER_NAME: "Name",
    "buyer.email": "Email",
    "buyer.name": "Billing Name",
    "buyer.phone": "Phone",
    "currency": "Currency",
    "shipping_total": "Shipping",
    "total_tax": "Taxes",
    "total": "Total",
    "coupon": "Discount Code",
    "order_discount": "Discount Amount",
    "placed_at": "Created at",
    "payment_method": "Payment Method",
    "notes": "Notes",
    "metadata.financial_status": "Financial Status",
    "lines.quantity": "Lineitem quantity",
    "lines.name": "Lineitem name",
    "lines.unit_price": "Lineitem price",
    "lines.sku": "Lineitem sku",
    "billing_address.name": "Billing Name",
    "billing_address.company": "Billing Company",
    "billing_address.address1": "Billing Address1",
    "billing_address.address2": "Billing Address2",
    "billing_address.city": "Billing City",
    "billing_address.province": "Billing Province",
    "billing_address.zip": "Billing Zip",
    "billing_address.country": "Billing Country",
    "billing_address.phone": "Billing Phone",
    "shipping_address.name": "Shipping Name",
    "shipping_address.company": "Shipping Company",
    "shipping_address.address1": "Shipping Address1",
    "shipping_address.address2": "Shipping Address2",
    "shipping_address.city": "Shipping City",
    "shipping_address.province": "Shipping Province",
    "shipping_address.zip": "Shipping Zip",
    "shipping_address.country": "Shipping Country",
    "shipping_address.phone": "Shipping Phone",
}
REQUIRED = {"Name", "Lineitem quantity", "Lineitem name"}

MAPPING = {
    "fields": FIELDS,
    "group_by": "Name",
    "optional": sorted(
        ({c for v in FIELDS.values() for c in ([v] if isinstance(v, str) else v)} | {"Cancelled at"})
        - REQUIRED
    ),
    "formats": {
        "dates": ["%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M"],
        "placeholders": ["-"],
        "excel_apostrophe": True,
        "country_names": True,
    },
    "skip": [
        {"column": "Financial Status", "values": ["voided"]},
        {"column": "Cancelled at", "not_empty": True},
    ],
}
