"""Playing samples: one work unit (a backend x a task x a shard of samples) at a time, with
progress on a terminal or in plain lines.

A :class:`WorkUnit` is plain data (it pickles), so an :class:`Executor` can ship it to
another process: :class:`LocalExecutor` runs each unit in this process with a bounded number of
samples in flight; ``harness._ray`` (imported only for ``run.executor: ray``) runs shards of
them on Ray actors. Either way every record reaches ``emit`` on the run's own thread.

With ``run.repeats`` above 1 each sample is played that many times, its repeats one after
another; repeat r >= 1 plays through :class:`SeededBackend`, which gives its requests the
repeat's seed. With one repeat (the default) nothing of this runs.
"""

from __future__ import annotations

import concurrent.futures as cf
import sys
import time
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import replace
from itertools import islice
from typing import Any
from typing import Protocol
from typing import TextIO
from typing import TypeVar
from typing import cast

from harness._errors import HarnessError
from harness._errors import StopRun
from harness._manifest import Entry
from harness._parts import Backend
from harness._parts import Metric
from harness._parts import Task
from harness._records import ChatRequest
from harness._records import ChatResponse
from harness._records import Outcome
from harness._records import Sample
from harness._records import Score
from harness._repeats import repeat_seed
from harness._store import Key

Item = TypeVar("Item")
Emit = Callable[[dict[str, Any]], None]  # takes a finished sample's record; the run writes it


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
    repeats: int = 1


class Executor(Protocol):
    """Where work units are played. :meth:`play` skips the keys in ``done`` and hands every
    record to ``emit`` on the calling thread, which alone writes ``samples.jsonl``."""

    def play(self, units: list[WorkUnit], done: set[Key], emit: Emit) -> None: ...


@dataclass(frozen=True)
class LocalExecutor:
    """The default: each unit in this process, one after another; ``play_unit`` builds
    nothing (the run's parts are built once) and plays one unit."""

    play_unit: Callable[[WorkUnit, set[Key], Emit], None]

    def play(self, units: list[WorkUnit], done: set[Key], emit: Emit) -> None:
        for unit in units:
            self.play_unit(unit, done, emit)


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
    samples: Iterable[Sample] = _guarded(task.samples(), unit.task)
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


def _guarded(samples: Iterable[Sample], entry: Entry) -> Iterator[Sample]:
    """A task's samples; an unexpected error while reading them (a third-party task meeting
    bytes it cannot decode) becomes one line naming the task instead of a traceback."""
    try:
        yield from samples
    except HarnessError:
        raise
    except (ValueError, RecursionError, OSError, KeyError, TypeError) as exc:
        raise HarnessError(
            f"task {entry.id!r} ({entry.type}) could not read its samples: "
            f"{type(exc).__name__}: {exc}; check the task's data files"
        ) from exc


def play_one(
    unit: WorkUnit, task: Task, backend: Backend, metrics: list[Metric], sample: Sample
) -> dict[str, Any]:
    """Play and score one sample; return its record as plain data (what ``samples.jsonl``
    holds, ``SampleRecord.to_dict()``'s shape). Any failure becomes the record's ``error``,
    never a crash (but :class:`StopRun`, which stops the run)."""
    started = time.perf_counter()
    try:
        outcome = task.play(sample, backend)
    except StopRun:
        raise
    except Exception as exc:
        retries = getattr(exc, "retries", None)
        fields = {"retries": retries} if isinstance(retries, int) else {}
        outcome = Outcome(output=None, error=f"{type(exc).__name__}: {exc}", fields=fields)
    total_s = time.perf_counter() - started
    scores, labels, failures = _score(metrics, sample, outcome)
    extra = {**_retries(outcome), **outcome.fields, **labels}
    if failures:
        extra["metric_errors"] = failures
    record = {
        "backend": unit.backend.id,
        "task": unit.task.id,
        "sample_id": str(sample.id),
        "output": outcome.output,
        "calls": None if outcome.calls is None else [c.to_dict() for c in outcome.calls],
        "scores": scores,
        "error": outcome.error,
        "timing": _timing(outcome, total_s),
        "target": sample.target,
    }
    record.update(extra)
    return record


def _retries(outcome: Outcome) -> dict[str, int]:
    """Retries a backend made (``ChatResponse.extra["retries"]``), summed over the sample."""
    counts = [r.extra["retries"] for r in outcome.responses if "retries" in r.extra]
    return {"retries": sum(counts)} if counts else {}


def _score(
    metrics: list[Metric], sample: Sample, outcome: Outcome
) -> tuple[dict[str, float], dict[str, Any], dict[str, str]]:
    """Every metric's values and labels. A metric that raises is recorded under its own id in
    the third value; the others keep their scores."""
    scores: dict[str, float] = {}
    labels: dict[str, Any] = {}
    failures: dict[str, str] = {}
    if outcome.error is not None:
        return scores, labels, failures
    for metric in metrics:
        try:
            score = _as_score(metric.score(sample, outcome))
            values = {k: float(v) for k, v in score.values.items()}
        except Exception as exc:
            failures[metric.context.id] = f"{type(exc).__name__}: {exc}"
            continue
        scores.update(values)
        labels.update(score.labels)
    return scores, labels, failures


def _as_score(result: Score | Mapping[str, float]) -> Score:
    return result if isinstance(result, Score) else Score(values=dict(result))


def _timing(outcome: Outcome, total_s: float) -> dict[str, float]:
    timing: dict[str, float] = {"total_s": round(total_s, 6)}
    responses = outcome.responses
    if responses:
        first = responses[0].timing
        if "ttft_s" in first:
            timing["ttft_s"] = first["ttft_s"]
        timing.update(_token_counts(responses))
        for key, value in first.items():
            timing.setdefault(key, value)
    return timing


def _token_counts(responses: tuple[ChatResponse, ...]) -> dict[str, int]:
    """Input and output tokens summed over the responses, each only if every response has it."""
    if len(responses) == 1:  # the usual case, without building lists
        r, single = responses[0], {}
        if r.input_tokens is not None:
            single["input_tokens"] = r.input_tokens
        if r.output_tokens is not None:
            single["output_tokens"] = r.output_tokens
        return single
    inputs = [r.input_tokens for r in responses]
    outputs = [r.output_tokens for r in responses]
    counts = {}
    if None not in inputs:
        counts["input_tokens"] = sum(inputs)  # type: ignore[arg-type]
    if None not in outputs:
        counts["output_tokens"] = sum(outputs)  # type: ignore[arg-type]
    return counts


def run_unit(
    unit: WorkUnit,
    parts: tuple[Task, Backend, list[Metric]],
    done: set[Key],
    concurrency: int,
    emit: Callable[[dict[str, Any]], None],
) -> None:
    """Play the unit's unfinished samples, at most ``concurrency`` at once, emitting records
    in completion order."""
    if unit.repeats > 1:
        _run_repeats(unit, parts, done, concurrency, emit)
        return
    task, backend, metrics = parts
    todo = (
        s
        for s in select_samples(task, unit)
        if (unit.backend.id, unit.task.id, str(s.id)) not in done
    )

    def play(sample: Sample) -> dict[str, Any]:
        return play_one(unit, task, backend, metrics, sample)

    _dispatch(todo, play, concurrency, emit)


def _run_repeats(
    unit: WorkUnit,
    parts: tuple[Task, Backend, list[Metric]],
    done: set[Key],
    concurrency: int,
    emit: Callable[[dict[str, Any]], None],
) -> None:
    """Each sample's unfinished repeats, one after another (a local backend's prompt cache
    then holds the prompt for the next); each record says its ``repeat`` and ``seed``."""
    task, backend, metrics = parts
    seeds = [repeat_seed(unit.seed, r) for r in range(unit.repeats)]
    backends = [backend, *(SeededBackend.of(backend, unit.seed, r) for r in range(1, len(seeds)))]
    todo = (
        (sample, r)
        for sample in select_samples(task, unit)
        for r in range(unit.repeats)
        if not _finished(done, (unit.backend.id, unit.task.id, str(sample.id)), r)
    )

    def play(item: tuple[Sample, int]) -> dict[str, Any]:
        sample, r = item
        return with_repeat(play_one(unit, task, backends[r], metrics, sample), r, seeds[r])

    _dispatch(todo, play, concurrency, emit)


def _finished(done: set[Key], key: tuple[str, str, str], repeat: int) -> bool:
    """Whether the repeat is recorded; a record without ``repeat`` (an adopted run's) is
    repeat 0."""
    return (*key, repeat) in done or (repeat == 0 and key in done)


def with_repeat(record: dict[str, Any], repeat: int, seed: int | None) -> dict[str, Any]:
    """The record with ``repeat`` and ``seed`` right after ``sample_id``, where a reader of
    ``samples.jsonl`` looks for what identifies a line."""
    head = {k: record[k] for k in ("backend", "task", "sample_id")}
    return head | {"repeat": repeat, "seed": seed} | record | {"repeat": repeat, "seed": seed}


class SeededBackend:
    """The backend as repeat ``repeat`` >= 1 sees it: each request's seed ``s`` (the run's
    seed when the request sets none) becomes ``repeat_seed(s, repeat)``, in :meth:`chat` and
    :meth:`complete`; everything else (``loglikelihood``, ``capabilities``,
    ``max_concurrency``, ``context``, a backend's own attributes) is the real backend's.
    Tasks seed their requests with ``self.context.seed``, so none has to know about repeats;
    a task that seeds requests its own way keeps its seeds distinct in every repeat."""

    def __init__(self, backend: Backend, run_seed: int | None, repeat: int) -> None:
        self._backend = backend
        self._run_seed, self._repeat = run_seed, repeat

    @classmethod
    def of(cls, backend: Backend, run_seed: int | None, repeat: int) -> Backend:
        """The proxy, typed as what tasks expect: a :class:`Backend`."""
        return cast(Backend, cls(backend, run_seed, repeat))

    def chat(self, request: ChatRequest) -> ChatResponse:
        return self._backend.chat(self._seeded(request))

    def complete(self, prompt: str, request: ChatRequest) -> ChatResponse:
        return self._backend.complete(prompt, self._seeded(request))

    def _seeded(self, request: ChatRequest) -> ChatRequest:
        own = request.params.seed
        seed = repeat_seed(self._run_seed if own is None else own, self._repeat)
        return replace(request, params=replace(request.params, seed=seed))

    def __getattr__(self, name: str) -> Any:
        if name == "_backend":  # not set yet (copy, pickle): no endless recursion
            raise AttributeError(name)
        return getattr(self._backend, name)


def _dispatch(
    todo: Iterator[Item],
    play: Callable[[Item], dict[str, Any]],
    concurrency: int,
    emit: Callable[[dict[str, Any]], None],
) -> None:
    """Play every item, in this thread or at most ``concurrency`` at once."""
    if concurrency <= 1:
        for item in todo:
            emit(play(item))
        return
    _run_threaded(todo, play, concurrency, emit)


def _run_threaded(
    todo: Iterator[Item],
    play: Callable[[Item], dict[str, Any]],
    concurrency: int,
    emit: Callable[[dict[str, Any]], None],
) -> None:
    """At most ``2 * concurrency`` samples submitted at once, records emitted as they finish."""
    pool = cf.ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="harness-sample")
    in_flight: set[cf.Future[dict[str, Any]]] = set()
    try:
        for item in todo:
            in_flight.add(pool.submit(play, item))
            if len(in_flight) >= concurrency * 2:
                finished, in_flight = cf.wait(in_flight, return_when=cf.FIRST_COMPLETED)
                for future in finished:
                    emit(future.result())
        for future in cf.as_completed(in_flight):
            emit(future.result())
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


# --- progress -------------------------------------------------------------------------------


class Progress:
    """Counts finished samples. ``interval_s`` spaces the plain lines when not on a terminal."""

    def __init__(
        self,
        total: int | None,
        label: str,
        stream: TextIO | None = None,
        enabled: bool = True,
        interval_s: float = 10.0,
    ) -> None:
        self.stream = stream or sys.stderr
        self.total, self.label, self.enabled = total, label, enabled
        self.count = 0
        self._started = self._last = time.monotonic()
        self._interval = interval_s
        is_tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._bar = self._tqdm(total, label) if enabled and is_tty else None

    def _tqdm(self, total: int | None, label: str) -> Any:
        from tqdm import tqdm  # 40 ms to import: only when a bar is shown

        return tqdm(total=total, desc=label, unit="sample", file=self.stream, dynamic_ncols=True)

    def update(self, n: int = 1) -> None:
        self.count += n
        if self._bar is not None:
            self._bar.update(n)
            return
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self._line(now)

    def _line(self, now: float) -> None:
        elapsed = max(now - self._started, 1e-9)
        rate = self.count / elapsed
        total = f"/{self.total}" if self.total is not None else ""
        eta = ""
        if self.total and rate > 0:
            eta = f", ETA {max(self.total - self.count, 0) / rate:.0f}s"
        print(
            f"{self.label}: {self.count}{total} samples ({rate:.1f}/s{eta})",
            file=self.stream,
            flush=True,
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.enabled and self.count:
            self._line(time.monotonic())
