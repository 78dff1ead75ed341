"""Task ``logit_probe`` and metric ``logit_stats``: how far a quantized model's next-token
distributions are from a reference's, on a text the project ships, and its perplexity.

The statistics are those llama.cpp's ``perplexity --kl-divergence`` prints: per token, the
negative log-likelihood of the text's next token, the KL divergence
``KL(P_reference || P_model)`` over the whole vocabulary, and whether both put the same token
on top. Any backend with the ``logprobs`` capability can be probed (``onnx``; ``llamacpp`` on
the llama-cpp-python engine), against any other as the reference, as long as both tokenize
the text the same way (checked per paragraph).

Hooks and parameters only: the task lives in :mod:`harness_plugins.quality._probe`.
"""

from __future__ import annotations

from typing import Any

from harness import Params
from harness import Register
from harness import ReportSection
from harness import RunView
from harness import hookimpl
from harness import param


@hookimpl
def register_tasks(register: Register) -> None:
    register("logit_probe", "harness_plugins.quality._probe:LogitProbe", params=LogitProbeParams)


@hookimpl
def register_metrics(register: Register) -> None:
    register("logit_stats", "harness_plugins.quality._probe:LogitStats", params=LogitStatsParams)


@hookimpl
def report_sections(run: RunView) -> list[ReportSection]:
    """ "Quality against cost": a row per backend, for runs that compare several."""
    from ._report import sections

    return sections(run)


class LogitProbeParams(Params):
    """Teacher-forced next-token statistics of each paragraph of a text, against a reference."""

    text: str | None = param(
        None,
        format="file",
        description="Text file, one sample per paragraph (blank-line separated); default: "
        "the project's own probe text (registry/data/text/probe.txt, 8 paragraphs).",
    )
    reference: dict[str, Any] | None = param(
        None,
        description="The reference backend's manifest entry (e.g. the fp32 variant); "
        "without it only the likelihood statistics are computed.",
        schema={"required": ["type"]},
    )
    limit: int | None = param(None, minimum=1, description="Probe only the first N paragraphs.")


class LogitStatsParams(Params):
    """The logit probe's per-paragraph NLL, perplexity, KL and top-1 agreement as scores."""
