"""The ``lmeval`` task and its ``lm_eval`` metric: lm-eval tasks played through a backend.

lm-eval does the evaluation work itself, as its own ``evaluate`` does it: the task builds its
requests (``build_all_requests``: prompts, few-shot contexts, choices), the filters run
(``FilterEnsemble.apply``), ``process_results`` gives each document's metric values and the
aggregation (``_process_results``: each metric's aggregation function, bootstrap or analytic
standard errors, group aggregation) gives the scores. What changes is the unit of work: one
document is one harness sample (``<task>/<doc_id>``), played when the runner reaches it,
recorded in ``samples.jsonl`` and skipped on resume, so lm-eval's request cache is not used.

A record carries, beside the usual fields, ``lm_eval``: the document's id, the filtered
response of each filter and every metric value under lm-eval's key (``exact_match,strip``).
Numeric values are also the record's scores, so they show in reports and in
``harness compare``; ``results.json`` and ``summary.csv`` hold lm-eval's own aggregates
(:meth:`LMEvalTask.aggregate`).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import threading
from collections import defaultdict
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness import BuildContext
from harness import InputError
from harness import Message
from harness import Metric
from harness import Outcome
from harness import Sample
from harness import Score
from harness import Task

from . import LMEvalParams
from ._requests import answer
from ._suite import load
from ._suite import task_manager

#: Keys of lm-eval's per-task results that are not metrics.
NOT_METRICS = ("name", "alias", "sample_len", " ")


class LMEvalTask(Task):
    """One lm-eval document per sample; lm-eval's own prompts, filters and metrics."""

    default_metrics = ("lm_eval",)
    params: LMEvalParams

    def __init__(self, params: LMEvalParams, context: BuildContext) -> None:
        super().__init__(params, context)
        folders = params.folders(context.base_dir)
        manager = task_manager(folders, params.include_defaults)
        loaded = load(manager, params.tasks, folders)
        self.tasks: dict[str, Any] = loaded["tasks"]
        self.groups: dict[str, Any] = loaded.get("groups") or {}
        for task in self.tasks.values():
            self._configure(task)
        self._instances: dict[str, list[Any]] | None = None
        self._lock = threading.Lock()

    def _configure(self, task: Any) -> None:
        """What ``lm_eval.simple_evaluate`` sets on each task before evaluating it."""
        p = self.params
        if getattr(task, "UNSAFE_CODE", False) and not p.confirm_run_unsafe_code:
            raise InputError(
                f"tasks: lm-eval task {task.task_name!r} is marked unsafe (it runs "
                "model-written code); set confirm_run_unsafe_code: true to run it"
            )
        if task.get_config("output_type") == "generate_until" and p.gen_kwargs:
            task.set_config(key="generation_kwargs", value=dict(p.gen_kwargs), update=True)
        if p.num_fewshot is not None and task.get_config("num_fewshot") != 0:
            task.set_config(key="num_fewshot", value=p.num_fewshot)
        elif task.get_config("num_fewshot") is None:
            task.set_config(key="num_fewshot", value=0)
        task.set_fewshot_seed(seed=p.fewshot_seed)

    # --- samples ----------------------------------------------------------------------------

    def instances(self) -> dict[str, list[Any]]:
        """Every document's lm-eval requests, keyed by sample id (built once, on first use)."""
        with self._lock:
            if self._instances is None:
                self._instances = {}
                for name, task in self.tasks.items():
                    self._instances.update(self._build(name, task))
            return self._instances

    def _build(self, name: str, task: Any) -> dict[str, list[Any]]:
        with contextlib.redirect_stderr(io.StringIO()):  # lm-eval's progress bar, per task
            task.build_all_requests(
                limit=self.params.limit,
                rank=0,
                world_size=1,
                system_instruction=self.params.system_instruction,
            )
        by_doc: dict[str, list[Any]] = defaultdict(list)
        for instance in task.instances:
            by_doc[f"{name}/{instance.doc_id}"].append(instance)
        for requests in by_doc.values():
            requests.sort(key=lambda x: x.idx)
        return dict(sorted(by_doc.items(), key=lambda item: item[1][0].doc_id))

    def samples(self) -> Iterator[Sample]:
        for sample_id, requests in self.instances().items():
            first = requests[0]
            task = self.tasks[first.task_name]
            yield Sample(
                id=sample_id,
                messages=(Message("user", str(first.args[0])),),
                target=_plain(task.doc_to_target(first.doc)),
                metadata={
                    "subtask": first.task_name,
                    "doc_id": first.doc_id,
                    "request_type": first.request_type,
                },
            )

    def size(self) -> int:
        return len(self.instances())

    def data_files(self) -> list[Path]:
        """The local data files the tasks read (their hashes go into the provenance)."""
        files: list[Path] = []
        for task in self.tasks.values():
            kwargs = task.get_config("dataset_kwargs") or {}
            files += [Path(f) for f in _strings(kwargs.get("data_files")) if Path(f).is_file()]
        return sorted(set(files))

    def info(self) -> dict[str, Any]:
        import lm_eval

        return {
            "lm_eval_version": lm_eval.__version__,
            "lm_eval": {
                name: {
                    "version": task.VERSION,
                    "output_type": task.get_config("output_type"),
                    "n-shot": task.get_config("num_fewshot"),
                    "higher_is_better": task.higher_is_better(),
                }
                for name, task in self.tasks.items()
            },
            "lm_eval_groups": {name: list(g.child_names) for name, g in self.groups.items()},
        }

    # --- playing ----------------------------------------------------------------------------

    def play(self, sample: Sample, backend: Any) -> Outcome:
        requests = [replace(r, resps=[], filtered_resps={}) for r in self.instances()[sample.id]]
        responses = []
        for request in requests:
            for _ in range(request.repeats or 1):
                value, response = answer(backend, request.request_type, request.args)
                request.resps.append(value)
                responses += [response] if response is not None else []
        task = self.tasks[requests[0].task_name]
        for ensemble in getattr(task, "_filters", ()):
            ensemble.apply(requests)
        return Outcome(
            output=_shown(task, requests),
            responses=tuple(responses),
            fields={"subtask": requests[0].task_name, "lm_eval": _scored(task, requests)},
        )

    # --- aggregation ------------------------------------------------------------------------

    def aggregate(self, records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """lm-eval's own aggregates (its ``_process_results``), from the records' metric
        values in document order: rows for each lm-eval task and group, and for the whole
        entry when it is one task or one group."""
        from lm_eval.evaluator_utils import _process_results

        raw = self._raw_metrics(records)
        results = _process_results(raw, self.groups, self.params.bootstrap_iters)
        document = results._to_eval_results()
        rows = []
        for name, values in document["results"].items():
            level = "group" if name in self.groups else "subtask"
            if level == "group" and name not in (document.get("groups") or {}):
                continue  # a group without aggregate_metric_list has no scores of its own
            rows += _rows(level, name, values, lambda key, name=name: self._count(raw, name, key))
        children = {c for g in self.groups.values() for c in g.child_names}
        tops = [n for n in document["results"] if n not in children]
        if len(tops) == 1:
            rows += [r | {"level": "task", "subtask": ""} for r in rows if r["subtask"] == tops[0]]
        return rows

    def _count(self, raw: dict[str, Any], name: str, key: str) -> int:
        """How many documents gave metric ``key`` (``acc,none``) in a task or group."""
        if name in self.groups:
            return sum(self._count(raw, child, key) for child in self.groups[name].child_names)
        metric, _, filter_key = key.rpartition(",")
        found = raw.get(name, {}).get("raw_metrics", {}).get((metric, filter_key), ())
        return len(found)

    def _raw_metrics(self, records: Iterable[dict[str, Any]]) -> dict[str, Any]:
        accumulated: dict[str, Any] = {
            name: {"task": task, "raw_metrics": defaultdict(list), "logged_samples": []}
            for name, task in self.tasks.items()
        }
        scored = sorted(
            (
                r
                for r in records
                if isinstance(r.get("lm_eval"), dict) and r.get("subtask") in self.tasks
            ),
            key=lambda r: (r["subtask"], r["lm_eval"]["doc_id"]),
        )
        for record in scored:
            raw = accumulated[record["subtask"]]["raw_metrics"]
            for key, value in record["lm_eval"]["metrics"].items():
                metric, _, filter_key = key.rpartition(",")
                raw[(metric, filter_key)].append(value)
        return accumulated


def _scored(task: Any, requests: list[Any]) -> dict[str, Any]:
    """lm-eval's ``process_results`` for each filter, keyed ``metric,filter``, with the
    filtered responses: the part of the record lm-eval's aggregation reads back."""
    doc = requests[0].doc
    metrics: dict[str, Any] = {}
    filtered: dict[str, Any] = {}
    for filter_key in requests[0].filtered_resps:
        responses = [r.filtered_resps[filter_key] for r in requests]
        filtered[filter_key] = responses
        for metric, value in task.process_results(doc, responses).items():
            metrics[f"{metric},{filter_key}"] = value
    return _plain({"doc_id": requests[0].doc_id, "filtered_resps": filtered, "metrics": metrics})


def _shown(task: Any, requests: list[Any]) -> str | None:
    """What the record's ``output`` shows: the generated text, the chosen answer of a
    multiple-choice document, or the log-likelihood."""
    first = requests[0].resps[0] if requests[0].resps else None
    kind = task.get_config("output_type")
    if kind == "generate_until":
        return None if first is None else str(first)
    if kind == "multiple_choice":
        lls = [r.resps[0][0] for r in requests]
        choices = task.doc_to_choice(requests[0].doc)
        best = max(range(len(lls)), key=lls.__getitem__)
        return str(choices[best]) if best < len(choices) else str(best)
    value = first[0] if isinstance(first, tuple) else first
    return None if value is None else f"{float(value):.6g}"


def _rows(
    level: str, name: str, values: dict[str, Any], count: Callable[[str], int]
) -> list[dict[str, Any]]:
    rows = []
    for key, value in values.items():
        metric, _, filter_key = key.partition(",")
        if key in NOT_METRICS or metric.endswith("_stderr") or not filter_key:
            continue
        stderr = values.get(f"{metric}_stderr,{filter_key}")
        rows.append(
            {
                "level": level,
                "subtask": name,
                "metric": key,
                "value": value,
                "stderr": stderr,
                "n": count(key),
            }
        )
    return rows


def _plain(value: Any) -> Any:
    """JSON-ready data (lm-eval's tuples become lists, numpy numbers become numbers)."""
    from lm_eval.utils import handle_non_serializable

    return json.loads(json.dumps(value, default=handle_non_serializable))


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    return []


class LMEvalMetric(Metric):
    """The lm-eval task's own per-sample metric values, as scores (numbers only: a corpus
    metric's per-sample items stay in the record's ``lm_eval`` field)."""

    def score(self, sample: Sample, outcome: Outcome) -> Score:
        found = (outcome.fields.get("lm_eval") or {}).get("metrics") or {}
        return Score(values={k: float(v) for k, v in found.items() if _number(v)})


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(float(value))
