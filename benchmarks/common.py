"""Helpers shared by the benchmark scripts (run as ``python benchmarks/NAME.py``)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def harness_run(manifest: Path, out: Path) -> float:
    """Wall seconds of one quiet ``harness run`` in a fresh interpreter (what a user pays)."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "harness", "run", str(manifest), "--out", str(out), "--no-progress"],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started
