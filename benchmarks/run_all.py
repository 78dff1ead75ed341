"""Every speed target of the project in one table: each benchmark script runs as a subprocess,
one after the other (never two at once: llama.cpp's threads spin-wait, and on 2 cores any
other load distorts every figure), and the figures are printed against their targets, next to
the anchor measured in the same run where there is one.

    python benchmarks/run_all.py [--skip-install] [--skip-llamacpp] [--only NAME ...]

Rows (targets for the 2-core reference machine):

- ``install``: a fresh clone to README command 1 done (empty pip cache), <= 180 s;
- ``api``: 1,000 BFCL items through the ``openai`` backend against a server of latency
  L = 0.16 s at concurrency C = 16, the server's busy span <= 1.10 x N*L/C; anchor: lm-eval's
  ``local-chat-completions`` on 1,000 generated questions at the same N, L and C;
- ``rescoring``: ``harness run`` over 34,910 recorded BFCL outputs, >= 10,000 samples/s end to
  end; anchor: BFCL's own decode+check loop on the same outputs (it writes nothing);
- ``fixed`` / ``core`` / ``memory``: a 1-sample run <= 0.30 s; the pipeline with the replay
  backend >= 30,000 samples/s; a 100,000-sample run < 200 MB peak RSS;
- ``decode``: llama.cpp decode through the harness / the raw engine (xllamacpp, the default)
  on the same prompts, >= 0.98.

Exit status 1 when a measured row misses its target.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import Table

HERE = Path(__file__).resolve().parent


def run_script(name: str, args: list[str], folder: Path) -> dict[str, Any]:
    """Run ``benchmarks/<name>.py`` with ``--json``; its figures (its own output is shown)."""
    out = folder / f"{name}.json"
    command = [sys.executable, str(HERE / f"{name}.py"), *args, "--json", str(out)]
    print(f"$ {' '.join(command[1:])}", flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=HERE.parent, check=False)
    print(f"  ({time.perf_counter() - started:.0f} s)\n", flush=True)
    if done.returncode != 0 and not out.exists():
        raise RuntimeError(f"{name}.py failed with exit status {done.returncode}")
    figures: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return figures


def row(path: str, value: str, target: str, met: bool, anchor: str = "") -> list[Any]:
    return [path, value, target, "yes" if met else "NO", anchor]


def install_rows(folder: Path) -> list[list[Any]]:
    f = run_script("fresh_install", [], folder)
    split = f"install {f['install_s']:.0f} s + run {f['run_s']:.0f} s"
    value = f"{f['total_s']:.0f} s ({split}; model load {f['model_load_s']:.2f} s)"
    return [row("fresh clone -> README command 1", value, "<= 180 s", f["total_s"] <= 180)]


def api_rows(folder: Path) -> list[list[Any]]:
    args = ["--task", "bfcl", "--samples", "1000", "--latency", "0.16", "--concurrency", "16"]
    f = run_script("api_concurrency", [*args, "--lm-eval-task", "qa"], folder)
    ours, *others = f["rows"]
    anchor = f"lm-eval: {others[0]['ratio']:.2f} x" if others else ""
    value = f"{ours['ratio']:.3f} x N*L/C (server span {ours['server']:.2f} s)"
    return [row("API run, 1,000 BFCL items", value, "<= 1.10 x", ours["ratio"] <= 1.10, anchor)]


def rescoring_rows(folder: Path) -> list[list[Any]]:
    f = run_script("bfcl_rescoring", [], folder)
    value = f"{f['samples_per_s']:,.0f} samples/s ({f['samples']:,} in {f['wall_s']:.2f} s)"
    anchor = f"BFCL loop: {f['bfcl_loop_samples_per_s']:,.0f}/s (writes nothing)"
    met = f["samples_per_s"] >= 10_000
    return [row("BFCL rescoring end to end", value, ">= 10,000/s", met, anchor)]


def core_rows(folder: Path) -> list[list[Any]]:
    f = run_script("core_throughput", [], folder)
    fixed, rate, rss = f["fixed_s"], f["samples_per_s"], f["peak_rss_mb"]
    return [
        row("fixed cost of a run (1 sample)", f"{fixed:.2f} s", "<= 0.30 s", fixed <= 0.30),
        row("core throughput (replay)", f"{rate:,.0f} samples/s", ">= 30,000/s", rate >= 30_000),
        row(f"{f['memory_samples']:,}-sample run", f"{rss:.0f} MB peak", "< 200 MB", rss < 200),
    ]


def decode_rows(folder: Path) -> list[list[Any]]:
    args = ["--skip-run", "--samples", "4", "--repeats", "3"]
    f = run_script("llamacpp_overhead", args, folder)
    rates = f"{f['harness_decode_tok_s']:.0f} / {f['raw_decode_tok_s']:.0f} tok/s"
    value = f"{f['ratio']:.3f} ({rates})"
    anchor = f"raw {f['engine']}"
    return [row("local decode: harness / raw engine", value, ">= 0.98", f["ratio"] >= 0.98, anchor)]


ROWS: dict[str, Callable[[Path], list[list[Any]]]] = {
    "install": install_rows,
    "api": api_rows,
    "rescoring": rescoring_rows,
    "core": core_rows,
    "decode": decode_rows,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-install", action="store_true", help="skip the fresh-clone row")
    parser.add_argument("--skip-llamacpp", action="store_true", help="skip the decode row")
    parser.add_argument("--only", nargs="+", choices=list(ROWS), help="run only these rows")
    args = parser.parse_args()
    skipped = {"install"} if args.skip_install else set()
    skipped |= {"decode"} if args.skip_llamacpp else set()
    names = args.only or [n for n in ROWS if n not in skipped]
    table = Table(["path", "measured", "target", "met", "anchor (same run)"])
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            table.rows += ROWS[name](Path(tmp))
    print(table.to_text())
    if any(r[3] != "yes" for r in table.rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
