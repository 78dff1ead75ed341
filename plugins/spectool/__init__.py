"""SpecTool's error patterns (IAC, IAV, IAN, IAT, RAC, IFN, IFE) as harness metrics."""

from .patterns import PATTERNS, Classification, classify, classify_trajectory, compat_scores

__all__ = ["PATTERNS", "Classification", "classify", "classify_trajectory", "compat_scores"]
