"""An order's identity at its origin, and the tracking id derived from it.

One rule for every way in (form, webhook, queue event, import): the tracking id is a keyed hash
(HMAC-SHA256) of what names the order where it was placed, so any re-run of any intake, after any
crash or failed write, and any second way in of the same shop, produces the same id, and the
dispatcher's claim in the outcome table keeps it at one provider order. The key is a secret in
Secrets Manager, so nobody can compute a tracking id from an order number: a tracking id stays the
capability to read its own order's status.
"""

from orderbridge.identity.shops import (
    PER_DELIVERY,
    ShopChange,
    document_shop_changes,
    effective_shop,
    shop_changes,
)
from orderbridge.identity.tracking import (
    OrderIdentity,
    TrackingIds,
    content_digests,
    differing_fields,
)

__all__ = [
    "PER_DELIVERY",
    "OrderIdentity",
    "ShopChange",
    "TrackingIds",
    "content_digests",
    "differing_fields",
    "document_shop_changes",
    "effective_shop",
    "shop_changes",
]
