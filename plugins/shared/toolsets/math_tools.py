"""Tool set ``math_tools``: small arithmetic functions (pure, deterministic).

``factorial`` and ``is_prime`` have no upper bound in their schemas on purpose: huge inputs are
left to the sandbox's time, memory and result-size limits, which tests exercise.
"""

from __future__ import annotations

import math

TOOLS = [
    {
        "name": "calculate_triangle_area",
        "description": "Area of a triangle from its base and height.",
        "parameters": {
            "type": "object",
            "properties": {
                "base": {"type": "number", "description": "Base length."},
                "height": {"type": "number", "description": "Height."},
                "unit": {"type": "string", "default": "units", "description": "Length unit."},
            },
            "required": ["base", "height"],
        },
    },
    {
        "name": "factorial",
        "description": "The factorial n! of a non-negative integer.",
        "parameters": {
            "type": "object",
            "properties": {"number": {"type": "integer", "minimum": 0, "description": "n."}},
            "required": ["number"],
        },
    },
    {
        "name": "gcd",
        "description": "Greatest common divisor of two integers.",
        "parameters": {
            "type": "object",
            "properties": {
                "a": {"type": "integer", "description": "First integer."},
                "b": {"type": "integer", "description": "Second integer."},
            },
            "required": ["a", "b"],
        },
    },
    {
        "name": "is_prime",
        "description": "Whether an integer is a prime number.",
        "parameters": {
            "type": "object",
            "properties": {"number": {"type": "integer", "description": "The integer to test."}},
            "required": ["number"],
        },
    },
]


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
