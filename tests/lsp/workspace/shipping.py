"""Shipping rates: a workspace module other files import (cross-file context tests)."""


def shipping_quote(
    weight_kg: float, *, destination_zone: str, express_delivery: bool = False
) -> float:
    """Price of sending a parcel of `weight_kg` to `destination_zone`."""
    base = 4.5 + 1.2 * weight_kg
    return base * (2 if express_delivery else 1)
