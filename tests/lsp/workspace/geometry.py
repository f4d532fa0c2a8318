"""A small module other workspace files import from (cross-file context tests)."""

import math


def circle_area(radius: float) -> float:
    """Area of a circle with the given radius."""
    return math.pi * radius * radius


class Vector:
    def __init__(self, x: float, y: float) -> None:
        self.x = x
        self.y = y

    def length(self) -> float:
        return math.hypot(self.x, self.y)
