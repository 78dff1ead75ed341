"""Harness's single-turn tool-use tasks (``bfcl``, ``apigen``, ``qa``) as lm-eval tasks, for
any lm-eval model (``hf``, ``vllm``, ``local-completions``...) from lm-eval's own command
line or ``simple_evaluate``.

An lm-eval YAML names the class and the harness task's manifest entry::

    task: harness_bfcl_simple
    class: !function harness_plugins.lmeval.bridge.HarnessTask
    harness_task: {type: bfcl, categories: [simple_python], mode: prompt, limit: 50}

Each sample becomes one ``generate_until`` request: the task's prompt (BFCL's system prompt
listing the functions, prompt mode), as plain text, or through the model's chat template
with lm-eval's ``--apply_chat_template``. The answer goes back through the harness task's
own decoder and its default metrics (BFCL's checker, APIGen's match), so a score means what
it means in a manifest. Multi-step tasks (``spectool``: calls run in a sandbox between
turns) do not fit lm-eval's one-batch evaluation; run them with ``harness run``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lm_eval.api.instance import Instance
from lm_eval.api.metrics import mean
from lm_eval.api.task import Task as LMEvalTaskBase

from harness import BuildContext
from harness import ChatResponse
from harness import HarnessError
from harness import Message
from harness import Sample
from harness import Score


class _Mean(dict[str, Any]):
    """Every metric the harness task's metrics give aggregates by mean (they are per-sample
    0/1 or numbers); lm-eval looks each key up."""

    def __missing__(self, key: str) -> Any:
        return mean


class _Higher(dict[str, Any]):
    def __missing__(self, key: str) -> bool:
        return True


class HarnessTask(LMEvalTaskBase):  # type: ignore[misc]
    """One harness task (a manifest entry under ``harness_task``) as an lm-eval task."""

    VERSION = 1
    OUTPUT_TYPE = "generate_until"

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        config = dict(config or {})
        self.spec = dict(config.pop("harness_task", None) or {})
        if "type" not in self.spec:
            raise ValueError("harness_task: give the harness task's entry, e.g. {type: bfcl}")
        self.generation = {
            "until": [],
            "max_gen_toks": int(config.pop("max_gen_toks", 512)),
            "do_sample": False,
        }
        config.pop("class", None)
        base_dir = Path(str((config.get("metadata") or {}).get("config_source", "."))).parent
        self.context = BuildContext(str(config.get("task", self.spec["type"])), base_dir)
        config |= {"output_type": "generate_until", "generation_kwargs": dict(self.generation)}
        super().__init__(config=config)

    def download(self, *args: Any, **kwargs: Any) -> None:
        """Build the harness task and its default metrics, and read its samples."""
        try:
            self.part = self.context.build("task", self.spec)
            self.metrics = [self.context.build("metric", m) for m in self.part.default_metrics]
        except HarnessError as exc:
            raise ValueError(f"harness_task {self.spec}: {exc}") from exc
        self.samples: dict[str, Sample] = {s.id: s for s in self.part.samples()}
        self.dataset = {"test": [{"id": sample_id} for sample_id in self.samples]}

    def has_training_docs(self) -> bool:
        return False

    def has_validation_docs(self) -> bool:
        return False

    def has_test_docs(self) -> bool:
        return True

    def test_docs(self) -> list[dict[str, Any]]:
        return list(self.dataset["test"])

    def messages(self, doc: dict[str, Any]) -> tuple[Message, ...]:
        """The prompt exactly as the harness task would send it (BFCL's system prompt too)."""
        return tuple(self.part.request(self.samples[doc["id"]]).messages)

    def doc_to_text(self, doc: dict[str, Any]) -> str:
        return "\n\n".join(str(m.content or "") for m in self.messages(doc)) + "\n\n"

    def doc_to_target(self, doc: dict[str, Any]) -> str:
        return json.dumps(self.samples[doc["id"]].target, ensure_ascii=False)

    def fewshot_context(self, doc: dict[str, Any], num_fewshot: int, **kwargs: Any) -> str:
        """The prompt as text, or through the model's chat template when lm-eval applies one
        (``--apply_chat_template``). No few-shot examples: the tasks are zero-shot."""
        template = kwargs.get("chat_template") if kwargs.get("apply_chat_template") else None
        if template is None:
            return self.doc_to_text(doc)
        turns = [{"role": m.role, "content": m.content or ""} for m in self.messages(doc)]
        return str(template(turns))

    def construct_requests(self, doc: dict[str, Any], ctx: str, **kwargs: Any) -> Instance:
        arguments = (ctx, dict(self.generation))
        return Instance(
            request_type="generate_until",
            doc=doc,
            arguments=arguments,
            idx=0,
            metadata=kwargs.get("metadata", (None, None, None)),
        )

    def process_results(self, doc: dict[str, Any], results: list[str]) -> dict[str, float]:
        """The answer through the harness task's decoder and default metrics."""
        sample = self.samples[doc["id"]]
        outcome = self.part.decode(sample, ChatResponse(text=results[0]))
        values: dict[str, float] = {}
        for metric in self.metrics:
            score = metric.score(sample, outcome)
            found = score.values if isinstance(score, Score) else score
            values.update({k: float(v) for k, v in found.items()})
        return values

    def aggregation(self) -> dict[str, Any]:
        return _Mean()

    def higher_is_better(self) -> dict[str, Any]:
        return _Higher()
