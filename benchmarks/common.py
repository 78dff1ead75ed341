"""Helpers shared by the benchmark scripts (run as ``python benchmarks/NAME.py``)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

#: A user's environment: Python writes bytecode (some sandboxes set PYTHONDONTWRITEBYTECODE,
#: which makes every run compile the modules again).
USER_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def harness_run(manifest: Path, out: Path) -> float:
    """Wall seconds of one quiet ``harness run`` in a fresh interpreter (what a user pays)."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "harness", "run", str(manifest), "--out", str(out), "--no-progress"],
        check=True,
        capture_output=True,
        env=USER_ENV,
    )
    return time.perf_counter() - started


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", type=Path, metavar="FILE", help="also write the figures to FILE (run_all.py)"
    )


def write_json(args: argparse.Namespace, figures: dict[str, Any]) -> None:
    """The script's figures as JSON, for ``run_all.py`` to put in its table."""
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2), encoding="utf-8")
