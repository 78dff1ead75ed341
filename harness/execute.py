"""Playing samples: one work unit (a backend x a task x a shard of samples) at a time.

A :class:`WorkUnit` is plain data (it pickles), so a future executor can ship it to another
process or to an existing distributed engine such as Ray; the local executor below runs it
in this process with a bounded number of samples in flight.
"""

from __future__ import annotations

import concurrent.futures as cf
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.interfaces import Backend, BuildContext, Metric, Task
from harness.manifest import Entry
from harness.plugins import PluginHost
from harness.records import Outcome, Sample, SampleRecord, Score
from harness.schema import with_defaults
from harness.store import Key


@dataclass(frozen=True)
class WorkUnit:
    """One backend x task x shard of samples, as data."""

    backend: Entry
    task: Entry
    metrics: tuple[Entry, ...]
    base_dir: str
    limit: int | None = None
    seed: int | None = None
    shard: int = 0
    num_shards: int = 1


def build(host: PluginHost, entry: Entry, base_dir: Path, seed: int | None) -> Any:
    """Instantiate a manifest entry through its plugin's (lazy) factory."""
    component = host.component(entry.kind, entry.type)
    factory = component.load()
    context = BuildContext(id=entry.id, base_dir=base_dir, seed=seed)
    params = with_defaults(entry.params, component.schema)
    try:
        return factory(params, context)
    except HarnessError:
        raise
    except Exception as exc:
        raise HarnessError(
            f"{entry.kind} {entry.id!r} (type {entry.type!r}, package {component.package!r}) "
            f"could not be set up: {type(exc).__name__}: {exc}"
        ) from exc


def default_metric_entries(task: Task, extra: tuple[Entry, ...]) -> tuple[Entry, ...]:
    """The task's default metrics (built with no parameters) then the manifest's, deduplicated."""
    ids = {e.id for e in extra}
    defaults = tuple(
        Entry("metric", name, name, {}, {"type": name})
        for name in task.default_metrics
        if name not in ids
    )
    return defaults + extra


def select_samples(task: Task, unit: WorkUnit) -> Iterator[Sample]:
    """The unit's shard of the task's first ``limit`` samples, with duplicate ids refused."""
    seen: set[str] = set()
    samples: Iterable[Sample] = task.samples()
    if unit.limit is not None:
        samples = islice(samples, unit.limit)
    for index, sample in enumerate(samples):
        if sample.id in seen:
            raise HarnessError(
                f"task {unit.task.id!r} yielded sample id {sample.id!r} twice; "
                "sample ids must be unique within a task"
            )
        seen.add(sample.id)
        if index % unit.num_shards == unit.shard:
            yield sample


def play_one(
    unit: WorkUnit, task: Task, backend: Backend, metrics: list[Metric], sample: Sample
) -> SampleRecord:
    """Play and score one sample. Any failure becomes the record's ``error``, never a crash."""
    started = time.perf_counter()
    try:
        outcome = task.play(sample, backend)
    except Exception as exc:
        fields = {"retries": exc.retries} if isinstance(getattr(exc, "retries", None), int) else {}
        outcome = Outcome(output=None, error=f"{type(exc).__name__}: {exc}", fields=fields)
    total_s = time.perf_counter() - started
    scores, labels, error = _score(metrics, sample, outcome)
    return SampleRecord(
        backend=unit.backend.id,
        task=unit.task.id,
        sample_id=str(sample.id),
        output=outcome.output,
        calls=None if outcome.calls is None else [c.to_dict() for c in outcome.calls],
        scores=scores,
        error=error,
        timing=_timing(outcome, total_s),
        target=sample.target,
        extra={**_retries(outcome), **outcome.fields, **labels},
    )


def _retries(outcome: Outcome) -> dict[str, int]:
    """Retries a backend made (``ChatResponse.extra["retries"]``), summed over the sample."""
    counts = [r.extra["retries"] for r in outcome.responses if "retries" in r.extra]
    return {"retries": sum(counts)} if counts else {}


def _score(
    metrics: list[Metric], sample: Sample, outcome: Outcome
) -> tuple[dict[str, float], dict[str, Any], str | None]:
    if outcome.error is not None:
        return {}, {}, outcome.error
    scores: dict[str, float] = {}
    labels: dict[str, Any] = {}
    for metric in metrics:
        try:
            result = metric.score(sample, outcome)
        except Exception as exc:
            return {}, {}, f"metric {metric.context.id!r} failed: {type(exc).__name__}: {exc}"
        score = result if isinstance(result, Score) else Score(values=dict(result))
        scores.update({k: float(v) for k, v in score.values.items()})
        labels.update(score.labels)
    return scores, labels, None


def _timing(outcome: Outcome, total_s: float) -> dict[str, float]:
    timing: dict[str, float] = {"total_s": round(total_s, 6)}
    responses = outcome.responses
    if responses:
        first = responses[0].timing
        if "ttft_s" in first:
            timing["ttft_s"] = first["ttft_s"]
        for field in ("input_tokens", "output_tokens"):
            counts = [getattr(r, field) for r in responses]
            if all(c is not None for c in counts):
                timing[field] = sum(counts)
        for key, value in first.items():
            timing.setdefault(key, value)
    return timing


def run_unit(
    unit: WorkUnit,
    parts: tuple[Task, Backend, list[Metric]],
    done: set[Key],
    concurrency: int,
    emit: Callable[[SampleRecord], None],
) -> None:
    """Play the unit's unfinished samples, at most ``concurrency`` at once, emitting records
    in completion order."""
    task, backend, metrics = parts
    todo = (
        s
        for s in select_samples(task, unit)
        if (unit.backend.id, unit.task.id, str(s.id)) not in done
    )
    if concurrency <= 1:
        for sample in todo:
            emit(play_one(unit, task, backend, metrics, sample))
        return
    _run_threaded(unit, parts, todo, concurrency, emit)


def _run_threaded(
    unit: WorkUnit,
    parts: tuple[Task, Backend, list[Metric]],
    todo: Iterator[Sample],
    concurrency: int,
    emit: Callable[[SampleRecord], None],
) -> None:
    task, backend, metrics = parts
    pool = cf.ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="harness-sample")
    in_flight: set[cf.Future[SampleRecord]] = set()
    try:
        for sample in todo:
            in_flight.add(pool.submit(play_one, unit, task, backend, metrics, sample))
            if len(in_flight) >= concurrency * 2:
                finished, in_flight = cf.wait(in_flight, return_when=cf.FIRST_COMPLETED)
                for future in finished:
                    emit(future.result())
        for future in cf.as_completed(in_flight):
            emit(future.result())
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
