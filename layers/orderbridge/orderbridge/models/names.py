"""Names used across the configuration and the queue event, declared once."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]

Shop = Annotated[
    Name | None,
    Field(
        description="The store this source's orders are placed in (default: the source's name). "
        "Sources naming the same shop (its webhook and its feed import) name the same order by "
        "the shop's order id, so each order is sent once whichever way it arrives first."
    ),
]
