"""Feed presets: the query parameters, sort order, paging and boundary handling of platforms'
order APIs (`paging.preset`), and mappings of their order JSON (`mapping.preset`).

* `shopify-orders-api`: `GET /admin/api/<version>/orders.json`, `updated_at_min` (inclusive),
  `order=updated_at asc`, `status=any`, `limit` up to 250, the next page in `Link` rel="next"
  (token in `X-Shopify-Access-Token`: `auth: {"type": "header", "header": "X-Shopify-Access-Token"}`).
* `woocommerce-orders-api`: `GET /wp-json/wc/v3/orders`, a bare array, `modified_after`
  (exclusive: asked one second early), oldest first by modification time, `page` / `per_page` up to
  100 with `X-WP-TotalPages`; orders sharing one time are paged through.

Both mappings name an order by the platform's immutable order `id`, as the platform's webhook does
(so a webhook and a feed of the same shop make one order), and keep the human order number under
the webhook's metadata key (`name` `#1001`, WooCommerce `number`).
"""

from orderbridge.imports.presets.shopify import ORDER_NAME
from orderbridge.imports.presets.woocommerce import ORDER_NUMBER

PAGING = {
    "shopify-orders-api": {
        "style": "link",
        "items": "orders",
        "since_param": "updated_at_min",
        "updated_at": "updated_at",
        "page_size_param": "limit",
        "page_size": 250,
        "sort": "asc",
        "params": {"status": "any", "order": "updated_at asc"},
    },
    "woocommerce-orders-api": {
        "style": "since",
        "items": "",
        "since_param": "modified_after",
        "since_exclusive": True,
        "updated_at": "date_modified_gmt",
        "page_param": "page",
        "total_pages_header": "X-WP-TotalPages",
        "page_size_param": "per_page",
        "page_size": 100,
        "sort": "asc",
        "params": {"orderby": "modified", "order": "asc", "dates_are_gmt": "true"},
    },
}

_ADDRESS = ("first_name", "last_name", "company", "address1", "address2", "city", "zip", "phone")
SHOPIFY_JSON = {
    "lines_path": "line_items",
    "fields": {
        "external_order_id": "id",
        ORDER_NAME: "name",
        "currency": "currency",
        "buyer.email": "email",
        "buyer.first_name": "customer.first_name",
        "buyer.last_name": "customer.last_name",
        "buyer.phone": "phone",
        "placed_at": "created_at",
        "notes": "note",
        "coupon": "discount_codes.0.code",
        "order_discount": "total_discounts",
        "shipping_total": "total_shipping_price_set.shop_money.amount",
        "total_tax": "total_tax",
        "taxes_included": "taxes_included",
        "total": "total_price",
        "test": "test",
        "metadata.financial_status": "financial_status",
        **{f"{a}.{f}": f"{a}.{f}" for a in ("billing_address", "shipping_address") for f in _ADDRESS},
        "billing_address.province": "billing_address.province_code",
        "billing_address.country": "billing_address.country_code",
        "shipping_address.province": "shipping_address.province_code",
        "shipping_address.country": "shipping_address.country_code",
        "lines.sku": "sku",
        "lines.name": "title",
        "lines.variant_title": "variant_title",
        "lines.quantity": "quantity",
        "lines.unit_price": "price",
    },
    "skip": [
        {"column": "financial_status", "values": ["voided"]},
        {"column": "cancelled_at", "not_empty": True},
    ],
}
_WOO_ADDRESS = {
    "first_name": "first_name",
    "last_name": "last_name",
    "company": "company",
    "address1": "address_1",
    "address2": "address_2",
    "city": "city",
    "province": "state",
    "zip": "postcode",
    "country": "country",
    "phone": "phone",
}
WOOCOMMERCE_JSON = {
    "lines_path": "line_items",
    "fields": {
        "external_order_id": "id",
        ORDER_NUMBER: "number",
        "currency": "currency",
        "buyer.email": "billing.email",
        "buyer.first_name": "billing.first_name",
        "buyer.last_name": "billing.last_name",
        "buyer.phone": "billing.phone",
        "placed_at": "date_created_gmt",
        "notes": "customer_note",
        "payment_method": "payment_method_title",
        "order_discount": "discount_total",
        "shipping_total": "shipping_total",
        "total_tax": "total_tax",
        "taxes_included": "prices_include_tax",
        "total": "total",
        "metadata.status": "status",
        **{f"billing_address.{k}": f"billing.{v}" for k, v in _WOO_ADDRESS.items()},
        **{f"shipping_address.{k}": f"shipping.{v}" for k, v in _WOO_ADDRESS.items()},
        "lines.sku": "sku",
        "lines.name": "name",
        "lines.quantity": "quantity",
        "lines.gross": "subtotal",
    },
    "formats": {"timezone": "UTC"},
    "skip": [{"column": "status", "values": ["cancelled", "failed", "refunded", "trash"]}],
}
