"""Core throughput and memory with the replay backend (no model in the loop).

Prints samples/second of the whole pipeline (task -> backend -> metric -> samples.jsonl) and
the peak RSS of a run of many samples, each measured in a fresh `harness run` subprocess.
Targets on the 2-core reference machine: >= 30,000 samples/s; < 200 MB peak for 100,000
samples; a 1-sample run in <= 0.30 s.

    python benchmarks/core_throughput.py [--samples 50000] [--memory-samples 100000]

Each timing is the best of ``--repeats`` runs: on 2 cores a single run varies by +-5 %.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
from pathlib import Path

from common import add_json_option
from common import harness_run
from common import write_json


def make_inputs(folder: Path, n: int) -> Path:
    """A QA file, a replay file answering it, and a manifest; returns the manifest."""
    with (folder / "qa.jsonl").open("w") as qa, (folder / "replay.jsonl").open("w") as replay:
        for i in range(n):
            qa.write(json.dumps({"id": f"s{i}", "question": f"What is {i}?", "answer": str(i)}))
            qa.write("\n")
            replay.write(json.dumps({"task": "qa", "sample_id": f"s{i}", "output": str(i)}))
            replay.write("\n")
    manifest = folder / "bench.json"
    manifest.write_text(
        json.dumps(
            {
                "name": "bench",
                "backends": [{"type": "replay", "path": "replay.jsonl"}],
                "tasks": [{"type": "qa", "path": "qa.jsonl"}],
            }
        )
    )
    return manifest


def timed_run(manifest: Path, out: Path) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one `harness run` subprocess."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    wall = harness_run(manifest, out)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before)


def best_wall(manifest: Path, repeats: int) -> float:
    """The shortest wall time of ``repeats`` runs of ``manifest``, each into a new folder."""
    return min(timed_run(manifest, manifest.parent / f"out{i}")[0] for i in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    add_json_option(parser)
    parser.add_argument("--memory-samples", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "one").mkdir()
        fixed = best_wall(make_inputs(root / "one", 1), args.repeats)
        (root / "speed").mkdir()
        wall = best_wall(make_inputs(root / "speed", args.samples), args.repeats)
        (root / "mem").mkdir()
        mem_wall, peak_kib = timed_run(
            make_inputs(root / "mem", args.memory_samples), root / "mem" / "out"
        )
    per_sample = max(wall - fixed, 1e-9) / args.samples
    print(f"fixed cost per run (1 sample):     {fixed:.2f} s (target <= 0.30 s)")
    print(
        f"{args.samples} samples end to end:       {wall:.2f} s "
        f"({args.samples / wall:,.0f} samples/s including the fixed cost)"
    )
    print(f"core throughput:                    {1 / per_sample:,.0f} samples/s (target >= 30,000)")
    print(
        f"{args.memory_samples} samples:              {mem_wall:.2f} s, peak RSS "
        f"{peak_kib / 1024:.0f} MB (target < 200 MB)"
    )
    write_json(
        args,
        {
            "fixed_s": fixed,
            "samples_per_s": 1 / per_sample,
            "memory_samples": args.memory_samples,
            "peak_rss_mb": peak_kib / 1024,
        },
    )


if __name__ == "__main__":
    main()
