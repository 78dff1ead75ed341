"""Repair a low-bit student towards its reference: uniform learning rate against layer-wise
rates from each divergence family, same steps and same seeds (docs/layerwise.md).

    python scripts/layerwise_repair.py registry/experiments/layerwise-repair.yaml [--out DIR]
        [--seeds 0 1 2] [--steps N] [--families jacobian ...]

Prints, per arm: held-out KL to the reference before and after (mean and 95% t-interval over
seeds), the paired change against the uniform arm, and the capitals score; writes every
number (losses, multipliers, timings) to DIR/repair.json. Needs the ``layerwise`` extra.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import yaml

FIELDS = ("reference", "student", "train_text", "heldout_text", "questions", "seeds", "steps")
FIELDS += ("lr", "window", "batch", "families", "mapping", "lr_min", "lr_max", "probe")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load_config(Path(args.config), args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = run(config, out if args.save_weights else None)
    (out / "repair.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(render(result))
    print(f"\nwritten: {out / 'repair.json'} ({result['wall_s']:.0f} s)")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="experiment file (registry/experiments/*.yaml)")
    parser.add_argument("--out", default="runs/layerwise-repair", help="folder for repair.json")
    parser.add_argument("--seeds", type=int, nargs="+", help="override the file's seeds")
    parser.add_argument("--steps", type=int, help="override the file's steps")
    parser.add_argument("--families", nargs="+", help="override the file's families")
    parser.add_argument(
        "--save-weights",
        action="store_true",
        help="write each arm's model under the first seed to DIR/<arm>.pt (0.5 GB each), for "
        "the torch backend's `weights:`",
    )
    return parser


def load_config(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The experiment file with overrides; a missing field is a one-line error naming it."""
    config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    missing = [f for f in FIELDS if f not in config]
    if missing:
        raise ValueError(f"{path}: missing field(s) {', '.join(missing)}; see {FIELDS}")
    overrides = {"seeds": args.seeds, "steps": args.steps, "families": args.families}
    config |= {k: v for k, v in overrides.items() if v}
    for key in ("train_text", "heldout_text", "questions"):
        config[key] = str((path.parent / config[key]).resolve())
        if not Path(config[key]).is_file():
            raise ValueError(f"{path}: {key}: no file {config[key]}; fix the path")
    config["base_dir"] = str(path.parent)
    return config


def run(config: dict[str, Any], save: Path | None = None) -> dict[str, Any]:
    """Diagnose, then train every arm under every seed; every number in one document."""
    from harness_plugins.layerwise import _repair as r
    from harness_plugins.layerwise._diagnose import DIVERGENCE_KEYS
    from harness_plugins.layerwise._diagnose import ProbeOptions
    from harness_plugins.layerwise._diagnose import diagnose
    from harness_plugins.layerwise._llama import load_gguf
    from harness_plugins.layerwise._task import layer_table
    from harness_plugins.layerwise._tokenizer import GGUFTokenizer
    from harness_plugins.layerwise._torch import torch  # OpenMP waits passively (see there)
    from harness_plugins.shared.models import resolve_model

    started = time.perf_counter()
    torch.manual_seed(0)
    base = Path(config["base_dir"])
    teacher, fields = load_gguf(resolve_model(config["reference"], base).path)
    student, _ = load_gguf(resolve_model(config["student"], base).path)
    tokenizer = GGUFTokenizer(fields)
    train = paragraphs(config["train_text"])
    heldout = [tokenizer.encode(p)[:96] for p in paragraphs(config["heldout_text"])]
    questions = load_questions(Path(config["questions"]))
    probe = config["probe"]
    options = ProbeOptions(tuple(config["families"]), probe["hutchinson_samples"], 0)
    probes = [tokenizer.encode(p)[: probe["max_tokens"]] for p in train[: probe["limit"]]]
    print(f"diagnosing {config['student']} against {config['reference']} on {len(probes)} probes")
    table = layer_table(diagnose(teacher, student, ids, options) for ids in probes)
    arms = [r.Arm("uniform", (1.0,) * teacher.config.layers)]
    for family in config["families"]:
        mults = r.multipliers_from(
            table, DIVERGENCE_KEYS[family], config["mapping"], config["lr_min"], config["lr_max"]
        )
        arms.append(r.Arm(family, mults))
    stream = [t for p in train for t in tokenizer.encode(p)]
    settings = r.TrainSettings(config["steps"], config["lr"], config["window"], config["batch"])
    before = {
        "kl": r.heldout_kl(teacher, student, heldout),
        "qa_student": r.qa_accuracy(student, tokenizer.encode, questions),
        "qa_reference": r.qa_accuracy(teacher, tokenizer.encode, questions),
    }
    print(
        f"before: held-out KL {before['kl']:.4f}, capitals {before['qa_student']:.3f} "
        f"(reference {before['qa_reference']:.3f})"
    )
    runs = []
    for seed in config["seeds"]:
        for arm in arms:
            (model, losses), train_s = r.timed(
                r.distil, student, teacher, stream, arm, settings, seed
            )
            kl = r.heldout_kl(teacher, model, heldout)
            qa = r.qa_accuracy(model, tokenizer.encode, questions)
            if save is not None and seed == config["seeds"][0]:
                torch.save(model.state_dict(), save / f"{arm.name}.pt")
            runs.append(
                {
                    "seed": seed,
                    "arm": arm.name,
                    "kl": kl,
                    "qa": qa,
                    "losses": losses,
                    "train_s": train_s,
                }
            )
            print(f"  seed {seed} {arm.name:>9}: KL {kl:.4f}  capitals {qa:.3f}  ({train_s:.0f} s)")
    return {
        "config": {k: v for k, v in config.items() if k != "base_dir"},
        "settings": asdict(settings),
        "layer_table": table,
        "arms": [asdict(a) for a in arms],
        "before": before,
        "runs": runs,
        "summary": summarise(runs, before),
        "wall_s": time.perf_counter() - started,
    }


def paragraphs(path: str) -> list[str]:
    text = Path(path).read_text(encoding="utf-8")
    return [p.strip() for p in text.split("\n\n") if p.strip()]


def load_questions(path: Path) -> list[Any]:
    """Capitals as 4-way choices: the right capital and three others, picked by a fixed seed."""
    from harness_plugins.layerwise._repair import QA

    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    capitals = [row["capital"] for row in rows]
    rng = np.random.default_rng(1234)
    questions = []
    for row in rows:
        others = [c for c in capitals if c != row["capital"]]
        picked = [str(c) for c in rng.choice(others, size=3, replace=False)]
        at = int(rng.integers(0, 4))
        choices = (*picked[:at], row["capital"], *picked[at:])
        prompt = f"Question: What is the capital of {row['country']}?\nAnswer:"
        questions.append(QA(prompt, tuple(" " + c for c in choices), at))
    return questions


def summarise(runs: list[dict[str, Any]], before: dict[str, float]) -> list[dict[str, Any]]:
    """Per arm: KL after and capitals score with intervals over seeds, and the paired change
    of KL against the uniform arm under the same seed (negative: the arm repaired more)."""
    from harness_plugins.layerwise._repair import interval

    uniform = {r["seed"]: r for r in runs if r["arm"] == "uniform"}
    rows = []
    for arm in dict.fromkeys(r["arm"] for r in runs):
        mine = [r for r in runs if r["arm"] == arm]
        paired = [r["kl"] - uniform[r["seed"]]["kl"] for r in mine if r["seed"] in uniform]
        rows.append(
            {
                "arm": arm,
                "kl_before": before["kl"],
                "kl_after": interval([r["kl"] for r in mine]),
                "kl_vs_uniform": interval(paired),
                "qa": interval([r["qa"] for r in mine]),
                "seeds": len(mine),
                "verdict": verdict(arm, interval(paired)),
            }
        )
    return rows


def verdict(arm: str, paired: tuple[float, float, float]) -> str:
    if arm == "uniform":
        return "baseline"
    _, low, high = paired
    if low == high:
        return "no interval (one seed)"
    if high < 0:
        return "better than uniform"
    if low > 0:
        return "worse than uniform"
    return "no difference shown"


def render(result: dict[str, Any]) -> str:
    header = (
        f"{'arm':>10}  {'KL before':>9}  {'KL after [95% CI]':>26}  "
        f"{'vs uniform [95% CI]':>30}  {'capitals [95% CI]':>22}  verdict"
    )
    lines = [header]
    for row in result["summary"]:
        paired = _ci(row["kl_vs_uniform"], signed=True)
        lines.append(
            f"{row['arm']:>10}  {row['kl_before']:>9.4f}  {_ci(row['kl_after']):>26}  "
            f"{paired:>30}  {_ci(row['qa'], 3):>22}  {row['verdict']}"
        )
    return "\n".join(lines)


def _ci(
    values: list[float] | tuple[float, float, float], digits: int = 4, signed: bool = False
) -> str:
    mean, low, high = values
    sign = "+" if signed else ""
    return f"{mean:{sign}.{digits}f} [{low:{sign}.{digits}f}, {high:{sign}.{digits}f}]"


if __name__ == "__main__":
    sys.exit(main())
