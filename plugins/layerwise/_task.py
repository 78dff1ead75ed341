"""Task ``layerwise`` and metric ``layerwise_stats``: each probe paragraph through the
reference and the backend under test, compared layer by layer (:mod:`._diagnose`).

Records keep the whole per-layer table (``record["layerwise"]``); the task's aggregates add a
row per layer (subtask ``layer 07``) for each family's divergence, and each family's most
divergent layer and learning-rate multipliers at task level, so ``results.json``,
``summary.csv`` and the printed table carry them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from harness import Backend
from harness import BuildContext
from harness import Message
from harness import Metric
from harness import Outcome
from harness import Sample
from harness import Score
from harness import Task

from . import LayerwiseParams
from . import _measures
from ._diagnose import DIVERGENCE_KEYS
from ._diagnose import ProbeOptions
from ._diagnose import ReferencePass
from ._diagnose import diagnose
from ._diagnose import reference_pass
from ._forward import ForwardReference
from ._forward import as_forward
from ._forward import diagnose_forward
from ._forward import forward_reference_pass
from ._llama import Llama

#: Output statistics that become scores (the rest stay in the record).
OUTPUT_SCORES = ("kl_mean", "kl_p99", "top1", "ppl", "ppl_delta")
#: Per-layer keys aggregated into ``layer NN`` subtask rows.
LAYER_ROWS = (*DIVERGENCE_KEYS.values(), "path_rel_l2")


class LayerwiseTask(Task):
    """One sample per paragraph; ``play`` needs a backend with the ``layers`` capability."""

    default_metrics = ("layerwise_stats",)
    params: LayerwiseParams

    def __init__(self, params: LayerwiseParams, context: BuildContext) -> None:
        super().__init__(params, context)
        self._reference = context.build("backend", params.reference, lazy=True)
        self._options = ProbeOptions(
            tuple(params.families), params.hutchinson_samples, context.seed or 0
        )
        self._passes: dict[str, ReferencePass] = {}
        self._forward_passes: dict[str, ForwardReference] = {}
        self._lock = threading.Lock()

    def _paragraphs(self) -> list[str]:
        if self.params.text:
            text = Path(self.params.text).read_text(encoding="utf-8")
        else:
            text = (
                resources.files("harness_registry")
                .joinpath("data/text/probe.txt")
                .read_text("utf-8")
            )
        return [p.strip() for p in text.split("\n\n") if p.strip()][: self.params.limit]

    def samples(self) -> Iterator[Sample]:
        for index, paragraph in enumerate(self._paragraphs()):
            yield Sample(id=f"p{index}", messages=(Message("user", paragraph),), target=None)

    def size(self) -> int:
        return len(self._paragraphs())

    def data_files(self) -> list[Path]:
        return [Path(self.params.text)] if self.params.text else []

    def play(self, sample: Sample, backend: Backend) -> Outcome:
        reference, ref_tokens = _layers(self._reference(), "reference")
        changed, tokens = _layers(backend, "backend")
        text = sample.messages[0].content or ""
        ids = ref_tokens.encode(text)
        if tokens.encode(text) != ids:
            raise ValueError("the backend tokenizes this paragraph differently from the reference")
        ids = ids[: self.params.max_tokens]
        if not (isinstance(reference, Llama) and isinstance(changed, Llama)):
            return Outcome(
                output=None, fields={"layerwise": self._forward(sample, reference, changed, ids)}
            )
        if reference.config != changed.config:
            raise ValueError(
                f"the backend's shape {changed.config} differs from the reference's "
                f"{reference.config}; layer mapping is identity only"
            )
        with self._lock:
            if sample.id not in self._passes:
                self._passes[sample.id] = reference_pass(reference, ids, self._options)
            ref = self._passes[sample.id]
        result = diagnose(reference, changed, ids, self._options, ref)
        return Outcome(output=None, fields={"layerwise": result})

    def _forward(self, sample: Sample, reference: Any, changed: Any, ids: list[int]) -> Any:
        """Forward-only models (ONNX): :func:`._forward.diagnose_forward`, finite differences."""
        reference, changed = as_forward(reference), as_forward(changed)
        with self._lock:
            if sample.id not in self._forward_passes:
                found = forward_reference_pass(reference, ids, self._options)
                self._forward_passes[sample.id] = found
            ref = self._forward_passes[sample.id]
        return diagnose_forward(reference, changed, ids, self._options, ref=ref)

    def aggregate(self, records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Per-layer means as ``layer NN`` subtask rows; each family's most divergent layer
        and the learning-rate multipliers of ``lr_family`` at task level."""
        table = layer_table(r["layerwise"] for r in records if r.get("layerwise"))
        if not table:
            return []
        rows = [
            _row("subtask", f"layer {entry['layer']:02d}", key, entry[key], entry["n"])
            for entry in table
            for key in LAYER_ROWS
            if entry.get(key) is not None
        ]
        for family in self.params.families:
            layer = most_divergent_layer(table, family)
            if layer is not None:
                rows.append(_row("task", "", f"most_divergent_{family}", layer, table[0]["n"]))
        multipliers = lr_multipliers(table, self.params.lr_family, self.params)
        n = table[0]["n"]
        rows += [
            _row("subtask", f"layer {k:02d}", "lr_multiplier", v, n) for k, v in multipliers.items()
        ]
        return rows

    def info(self) -> dict[str, Any]:
        return {
            "paragraphs": self.size(),
            "reference": self.params.reference,
            "families": list(self.params.families),
            "reconstruction": "docs/layerwise.md (Kokane et al., arXiv 2407.04871, as rebuilt)",
        }


def _layers(backend: Any, role: str) -> tuple[Any, Any]:
    if "layers" not in getattr(backend, "capabilities", ()):
        raise ValueError(
            f"the {role} ({type(backend).__name__}) does not expose its layers; use a backend "
            "with the `layers` capability (type: torch, or onnx with the onnx package)"
        )
    found: tuple[Any, Any] = backend.layer_model()
    return found


def _row(level: str, subtask: str, metric: str, value: float, n: int) -> dict[str, Any]:
    return {
        "level": level,
        "subtask": subtask,
        "metric": metric,
        "value": float(value),
        "stderr": float("nan"),
        "n": n,
    }


def layer_table(results: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean of every numeric per-layer measure over probes: one entry per layer."""
    sums: dict[int, dict[str, list[float]]] = {}
    for result in results:
        for layer in result["layers"]:
            slot = sums.setdefault(layer["layer"], {})
            for key, value in layer.items():
                if isinstance(value, int | float) and key != "layer":
                    slot.setdefault(key, []).append(float(value))
    table = []
    for index in sorted(sums):
        means = {k: float(np.mean(v)) for k, v in sums[index].items()}
        n = max((len(v) for v in sums[index].values()), default=0)
        table.append({"layer": index, **means, "n": n})
    return table


def most_divergent_layer(table: list[dict[str, Any]], family: str) -> int | None:
    key = DIVERGENCE_KEYS[family]
    scored = [(e[key], e["layer"]) for e in table if e.get(key) is not None]
    return max(scored)[1] if scored else None


def lr_multipliers(
    table: list[dict[str, Any]], family: str, params: LayerwiseParams
) -> dict[int, float]:
    key = DIVERGENCE_KEYS[family]
    entries = [e for e in table if e.get(key) is not None]
    values = _measures.lr_multipliers(
        [e[key] for e in entries],
        params.lr_mapping,
        params.lr_min,
        params.lr_max,
        params.lr_temperature,
    )
    return {e["layer"]: v for e, v in zip(entries, values, strict=True)}


class LayerwiseStats(Metric):
    """Output statistics (KL, top-1, perplexity) and each family's largest divergence."""

    def score(self, sample: Sample, outcome: Outcome) -> Score:
        result = outcome.fields.get("layerwise") or {}
        values = {
            k: float(result["output"][k]) for k in OUTPUT_SCORES if k in result.get("output", {})
        }
        for family, key in DIVERGENCE_KEYS.items():
            found = [layer[key] for layer in result.get("layers", []) if layer.get(key) is not None]
            if found:
                values[f"{family}_max"] = float(max(found))
        return Score(values=values)
