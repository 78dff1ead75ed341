"""Tool set ``math_tools``: small arithmetic functions (pure, deterministic).

``factorial`` and ``is_prime`` have no upper bound in their schemas on purpose: huge inputs are
left to the sandbox's time, memory and result-size limits, which tests exercise.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

#: the allow-list: each function's spec, kept as data beside this module
TOOLS = json.loads(Path(__file__).with_suffix(".json").read_text(encoding="utf-8"))


def calculate_triangle_area(base: float, height: float, unit: str = "units") -> dict:
    if base < 0 or height < 0:
        raise ValueError("base and height must be non-negative")
    return {"area": 0.5 * base * height, "unit": f"square {unit}"}


def factorial(number: int) -> int:
    return math.factorial(number)


def gcd(a: int, b: int) -> int:
    return math.gcd(a, b)


def is_prime(number: int) -> bool:
    if number < 2:
        return False
    return all(number % d for d in range(2, math.isqrt(number) + 1))
