"""The storefront order form: the page, the embeddable snippet, the script and the confirmation.

Lives in the core package so the Lambda function and the local run serve the same thing. The page
works without its script (a plain HTML post); the script only makes it nicer. See `web.Storefront`.
"""

from orderbridge.storefront.web import Storefront

__all__ = ["Storefront"]
