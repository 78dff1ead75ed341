"""Running a manifest: build the parts, play every unfinished sample, write results, record
provenance (which code, plugins, data and seeds produced the run).

The run directory is the single source of truth: ``samples.jsonl`` grows as samples finish,
and everything else (``results.json``, ``summary.csv``, ``report.html``) is derived from it, so
an interrupted run resumes by skipping the keys already there.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from dataclasses import field
from datetime import UTC
from datetime import datetime
from hashlib import sha256
from pathlib import Path
from typing import Any

from harness import _experiment as experiment
from harness._errors import RunDirError
from harness._manifest import Manifest
from harness._manifest import load_manifest
from harness._parts import Backend
from harness._parts import Builder
from harness._parts import Metric
from harness._parts import Task
from harness._play import Emit
from harness._play import Executor
from harness._play import LocalExecutor
from harness._play import Progress
from harness._play import WorkUnit
from harness._play import default_metric_entries
from harness._play import run_unit
from harness._plugins import PluginHost
from harness._records import RunEnded
from harness._records import RunInfo
from harness._records import RunStarted
from harness._records import SampleFinished
from harness._records import SampleRecord
from harness._report import write_report
from harness._report_summary import Digest
from harness._results import MANIFEST
from harness._results import RunView
from harness._results import Tally
from harness._results import merge_task_rows
from harness._results import write_results
from harness._store import SAMPLES
from harness._store import Key
from harness._store import RunDirLock
from harness._store import SampleWriter
from harness._store import drop_errors
from harness._store import finished_keys
from harness._store import iter_records
from harness._store import record_key
from harness._store import write_atomic

log = logging.getLogger("harness")


@dataclass(frozen=True)
class RunResult:
    """What :func:`run_manifest` returns: where the run is, how it ended, the content of
    ``results.json``, how many samples were played now and how many were already done, how
    many samples each failing metric could not score (with the first error), the plugin
    hooks that raised, and the aggregate ``rows`` (as in ``summary.csv``)."""

    run_dir: Path
    status: str
    results: dict[str, Any] | None
    played: int
    skipped: int
    metric_errors: dict[str, int] = field(default_factory=dict)
    first_metric_error: str | None = None
    hook_errors: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)


ADOPTED = "adopted"  # manifest.json: when records whose manifest.json was lost were taken over
ADOPTING = "_adopting"
REPEATS = "repeats"  # manifest.json experiment and results.json config, only when above 1


def default_out(manifest: Manifest) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in manifest.name)
    return Path("runs") / safe


def plan_sha256(manifest: Manifest) -> str:
    """Hash of what decides the records (not limit, out or concurrency): resume is allowed
    only into a run directory made by the same plan. Repeats count only above 1, so the
    hash of a run without repeats is what it always was."""
    plan = {k: v for k, v in manifest.raw.items() if k not in ("run", "description")}
    plan["seed"] = (manifest.raw.get("run") or {}).get("seed")
    if manifest.run.repeats != 1:
        plan["repeats"] = manifest.run.repeats
    return sha256(json.dumps(plan, sort_keys=True, default=str).encode()).hexdigest()


def check_run_dir(
    run_dir: Path, manifest: Manifest, host: PluginHost, adopt: bool = False
) -> dict[str, Any] | None:
    """Return the existing ``manifest.json`` when resuming; refuse another experiment's
    directory (what can be known before building: entries, parameters, versions, seed).
    ``adopt`` takes over records whose ``manifest.json`` was lost (they cannot be checked)."""
    path = run_dir / MANIFEST
    if not path.exists():
        if not (run_dir / SAMPLES).exists():
            return None
        if adopt:
            return {ADOPTING: True}
        raise RunDirError(
            f"{run_dir}: has samples.jsonl but no manifest.json (deleted?), so the experiment "
            "its records come from cannot be checked; rerun with --adopt to continue it as "
            "this manifest's run, or choose another --out"
        )
    try:
        existing = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RunDirError(f"{path}: unreadable ({exc}); choose another --out") from None
    if "experiment" in existing:  # since 0.2
        _check_repeats(run_dir, existing["experiment"], manifest)
        before = {k: existing["experiment"].get(k) for k in ("seed", "entries")}
        experiment.check(run_dir, before, experiment.fingerprint(manifest, host))
    elif existing.get("plan_sha256") != plan_sha256(manifest):
        raise RunDirError(
            f"{run_dir}: holds a run of a different manifest (backends, tasks, metrics, seed "
            "or repeats changed); pass --out with a new directory, or delete this one to start "
            "over"
        )
    return dict(existing)


def _check_repeats(run_dir: Path, before: dict[str, Any], manifest: Manifest) -> None:
    """Refuse another ``run.repeats``, as another seed is refused: the pass^k rows assume
    every sample is played as often (``experiment.repeats``; absent means 1)."""
    was, now = before.get(REPEATS, 1), manifest.run.repeats
    if was != now:
        raise RunDirError(
            f"{run_dir}: holds a run of a different experiment (run.repeats: {was!r} -> "
            f"{now!r}); pass --out with a new directory, or delete this one to start over"
        )


def _with_repeats(fields: dict[str, Any], repeats: int) -> dict[str, Any]:
    """``fields`` plus ``repeats`` when above 1: a run without repeats writes what it always
    wrote (``manifest.json``, ``results.json``)."""
    return fields if repeats == 1 else {**fields, REPEATS: repeats}


class Run:
    """One execution of a manifest into a run directory."""

    def __init__(
        self,
        manifest: Manifest,
        host: PluginHost,
        run_dir: Path,
        progress: bool = True,
        retry_errors: bool = False,
        adopt: bool = False,
    ) -> None:
        self.manifest, self.host, self.run_dir = manifest, host, run_dir
        self.show_progress = progress
        self.retry_errors = retry_errors
        self.adopt = adopt
        self.base_dir = manifest.path.resolve().parent
        self.seed = manifest.run.seed
        self.played = 0
        self.metric_errors: Counter[str] = Counter()
        self.first_metric_error: str | None = None
        self.hook_errors: list[str] = []
        self.tally = Tally()
        self.digest = Digest({}, 1)

    def execute(self) -> RunResult:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with RunDirLock(self.run_dir):
            return self._execute_locked()

    def _execute_locked(self) -> RunResult:
        existing = check_run_dir(self.run_dir, self.manifest, self.host, self.adopt)
        if existing and self.retry_errors:
            drop_errors(self.run_dir / SAMPLES)
        builder = Builder(self.host, self.base_dir, self.seed, self.run_dir)
        try:
            parts = self._build_parts(builder)
            done = self._resume(parts)
            doc = self._write_manifest(existing, parts)
            info = RunInfo(str(self.run_dir), self.manifest.name, doc, len(done))
            return self._play(info, parts, done)
        finally:
            builder.close()

    def _resume(self, parts: dict[str, Any]) -> set[Key]:
        """The finished (sample, repeat) keys; the tally starts from their records (read
        once)."""
        labels = {label for m in parts["metrics"].values() for label in m.counted_labels}
        self.tally = Tally(count_labels=sorted(labels))
        self.digest = _digest(parts)
        done: set[Key] = set()
        for record in iter_records(self.run_dir / SAMPLES):
            done.add(record_key(record))
            self.tally.add(record)
            self.digest.add(record)
        return done

    # --- building ---------------------------------------------------------------------------

    def _build_parts(self, builder: Builder) -> dict[str, Any]:
        """Every backend, task and metric of the run, each built once."""
        backends = {e.id: builder.build_entry(e) for e in self.manifest.backends}
        tasks = {e.id: builder.build_entry(e) for e in self.manifest.tasks}
        entries = {
            task_id: default_metric_entries(task, self.manifest.metrics)
            for task_id, task in tasks.items()
        }
        metrics = {e.id: builder.build_entry(e) for es in entries.values() for e in es}
        return {"backends": backends, "tasks": tasks, "metric_entries": entries, "metrics": metrics}

    # --- provenance -------------------------------------------------------------------------

    def _write_manifest(
        self, existing: dict[str, Any] | None, parts: dict[str, Any]
    ) -> dict[str, Any]:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        used_metrics = [e for es in parts["metric_entries"].values() for e in es]
        doc = {
            "schema_version": 1,
            "name": self.manifest.name,
            "manifest": self.manifest.raw,
            "manifest_sha256": self.manifest.sha256,
            "plan_sha256": plan_sha256(self.manifest),
            "source": str(self.manifest.path),
            "started_at": (existing or {}).get("started_at", now),
            "resumed_at": [*(existing or {}).get("resumed_at", []), now] if existing else [],
            "seed": self.seed,
            "environment": experiment.environment(),
            "plugins": experiment.plugin_versions(self.host, self.manifest, used_metrics),
            "data": {tid: _task_provenance(t) for tid, t in parts["tasks"].items()},
            "backends": {bid: b.info() for bid, b in parts["backends"].items()},
        }
        fingerprint = {
            **experiment.fingerprint(self.manifest, self.host),
            **experiment.files(doc),
        }
        doc["experiment"] = _with_repeats(fingerprint, self.manifest.run.repeats)
        if existing:
            self._resume_record(existing, doc, now)
        write_json_atomic(self.run_dir / MANIFEST, redact(doc, self.manifest.env_values))
        return doc

    def _resume_record(self, existing: dict[str, Any], doc: dict[str, Any], now: str) -> None:
        """Refuse changed data or model files; keep the history of operational changes."""
        if existing.get(ADOPTING):
            doc[ADOPTED] = {"at": now, "records": len(finished_keys(self.run_dir / SAMPLES))}
            return
        if ADOPTED in existing:
            doc[ADOPTED] = existing[ADOPTED]
        if "experiment" in existing:
            experiment.check(self.run_dir, existing["experiment"], doc["experiment"])
        old_raw = existing.get("manifest") or {}
        changed = experiment.operational_changes(old_raw, self.manifest, self.host)
        history = list(existing.get("resume_changes", []))
        doc["resume_changes"] = history + ([{"at": now, "changed": changed}] if changed else [])

    def results_context(self, doc: dict[str, Any]) -> dict[str, Any]:
        m = self.manifest
        return {
            "configs": {e.id: e.raw for e in m.tasks},
            "backends": {e.id: e.raw for e in m.backends},
            "metrics": {e.id: e.raw for e in m.metrics},
            "task_info": {tid: _without_files(d) for tid, d in doc["data"].items()},
            "versions": {
                "harness": doc["environment"]["harness"],
                "plugins": doc["plugins"],
                "data": {tid: d["sha256"] for tid, d in doc["data"].items()},
            },
            "config": _with_repeats(
                {
                    "name": m.name,
                    "seed": m.run.seed,
                    "limit": m.run.limit,
                    "manifest_sha256": doc["plan_sha256"],
                },
                m.run.repeats,
            ),
        }

    # --- playing ----------------------------------------------------------------------------

    def _play(self, info: RunInfo, parts: dict[str, Any], done: set[Key]) -> RunResult:
        units = self._units(parts)
        total = _expected_total(units, parts["tasks"], len(done))
        self._notify("on_run_start", run=info, event=RunStarted(info, total))
        progress = Progress(total, f"harness {self.manifest.name}", enabled=self.show_progress)
        writer = SampleWriter(self.run_dir / SAMPLES, self.manifest.run.flush_every)
        status, error = "failed", None
        try:
            self._executor(parts).play(units, done, self._emitter(writer, progress, info))
            status = "finished"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            writer.close()
            progress.close()
            if status != "finished":
                self._end(info, status, None, len(done), error)
        rows = self._own_aggregates(self.tally.rows(_declared_groups(info.manifest)), parts)
        context = self.results_context(info.manifest) | self._format_sensitivity(parts)
        results = write_results(self.run_dir, context, rows)
        manifest = RunView.read_manifest(self.run_dir)
        view = RunView(self.run_dir, manifest, rows, self.tally.failures, self.tally.labels)
        write_report(view, self.host, self.hook_errors, self.digest)
        self._end(info, status, results, len(done), None)
        return RunResult(
            self.run_dir,
            status,
            results,
            self.played,
            len(done),
            dict(self.metric_errors),
            self.first_metric_error,
            self.hook_errors,
            rows,
        )

    def _own_aggregates(self, rows: list[dict[str, Any]], parts: dict[str, Any]) -> list[Any]:
        """Rows that tasks compute themselves (``Task.aggregate``) in place of the core's.
        A task whose aggregation fails keeps the core's means; the failure is reported."""
        for task_id, task in parts["tasks"].items():
            for backend_id in parts["backends"]:
                records = (
                    r
                    for r in iter_records(self.run_dir / SAMPLES)
                    if r["task"] == task_id and r["backend"] == backend_id
                )
                try:
                    own = task.aggregate(records)
                except Exception as exc:
                    message = f"task {task_id!r}: aggregate() failed: {type(exc).__name__}: {exc}"
                    log.warning("%s; its scores are the core's means", message)
                    self.hook_errors.append(message)
                    continue
                if own:
                    rows = merge_task_rows(rows, backend_id, task_id, own, self.tally.counts)
        return rows

    def _format_sensitivity(self, parts: dict[str, Any]) -> dict[str, Any]:
        """``{"format_sensitivity": ...}`` when a task declares format axes (read from
        ``samples.jsonl`` once; see :mod:`harness._sensitivity`), else nothing."""
        axes = {tid: t.format_axes() for tid, t in parts["tasks"].items() if t.format_axes()}
        if not axes:
            return {}
        from harness._sensitivity import analyse

        records = (r for r in iter_records(self.run_dir / SAMPLES) if r["task"] in axes)
        found = analyse(records)
        for task_id, entry in found.items():
            entry["axes"] = {a: list(v) for a, v in axes[task_id].items()}
        return {"format_sensitivity": found} if found else {}

    def _end(
        self,
        info: RunInfo,
        status: str,
        results: dict[str, Any] | None,
        skipped: int,
        error: str | None,
    ) -> None:
        event = RunEnded(info, status, results, self.played, skipped, error)
        self._notify("on_run_end", run=info, results=results, status=status, event=event)

    def _notify(self, hook: str, **kwargs: Any) -> None:
        self.hook_errors += self.host.notify(hook, **kwargs)

    def _units(self, parts: dict[str, Any]) -> list[WorkUnit]:
        m = self.manifest
        return [
            WorkUnit(
                backend,
                task,
                parts["metric_entries"][task.id],
                str(self.base_dir),
                limit=m.run.limit,  # per task; a task's own ``limit`` parameter is its own
                seed=self.seed,
                repeats=m.run.repeats,
            )
            for backend in m.backends
            for task in m.tasks
        ]

    def _executor(self, parts: dict[str, Any]) -> Executor:
        """Where the units play: in this process, or (``run.executor: ray``) on Ray actors,
        with each backend's concurrency as its cluster-wide limit. Ray is imported only then."""
        if self.manifest.run.executor != "ray":
            return LocalExecutor(lambda unit, done, emit: self._run_unit(unit, parts, done, emit))
        from harness._ray import RayExecutor

        requested = self.manifest.run.concurrency
        limits = {k: backend_concurrency(b, requested) for k, b in parts["backends"].items()}
        return RayExecutor(self.manifest, self.host, self.run_dir, limits, self.show_progress)

    def _run_unit(self, unit: WorkUnit, parts: dict[str, Any], done: set[Key], emit: Emit) -> None:
        backend = parts["backends"][unit.backend.id]
        task = parts["tasks"][unit.task.id]
        metrics: list[Metric] = [parts["metrics"][e.id] for e in unit.metrics]
        concurrency = max(1, backend_concurrency(backend, self.manifest.run.concurrency))
        run_unit(unit, (task, backend, metrics), done, concurrency, emit)

    def _emitter(self, writer: SampleWriter, progress: Progress, info: RunInfo) -> Emit:
        """What each finished record goes through, on the run's thread, whatever executor
        played it: ``samples.jsonl``, the tally, the report's digest, progress, hooks."""
        hooks = self.host.has_impls("on_sample_finished")

        def emit(data: dict[str, Any]) -> None:
            writer.write(data)
            self.tally.add(data)
            self.digest.add(data)
            self.played += 1
            self._count_metric_errors(data)
            progress.update()
            if hooks:
                event = SampleFinished(info, SampleRecord.from_dict(data))
                self._notify("on_sample_finished", run=info, record=data, event=event)

        return emit

    def _count_metric_errors(self, data: dict[str, Any]) -> None:
        for metric_id, message in (data.get("metric_errors") or {}).items():
            self.metric_errors[metric_id] += 1
            if self.first_metric_error is None:
                self.first_metric_error = (
                    f"metric {metric_id!r} on sample {data['sample_id']!r}: {message}"
                )


def _digest(parts: dict[str, Any]) -> Digest:
    """The report's digest of the records, fed as they are read back and as they finish."""
    declared = {tid: t.info().get("headline") for tid, t in parts["tasks"].items()}
    headlines = {tid: str(h) for tid, h in declared.items() if h}
    return Digest(headlines, len(parts["tasks"]) * len(parts["backends"]))


def _declared_groups(doc: dict[str, Any]) -> dict[str, Any]:
    """The groups each task declared in its provenance (as ``read_groups`` finds them)."""
    return {task: info["groups"] for task, info in doc["data"].items() if info.get("groups")}


def _without_files(provenance: dict[str, Any]) -> dict[str, Any]:
    """A task's provenance less its file list and hashes (``versions.data`` has the digest)."""
    return {k: v for k, v in provenance.items() if k not in ("files", "sha256")}


def _task_provenance(task: Task) -> dict[str, Any]:
    files = [Path(p) for p in task.data_files()]
    return {**task.info(), **experiment.data_fingerprint(files)}


def _expected_total(units: list[WorkUnit], tasks: dict[str, Task], done: int) -> int | None:
    """Plays (samples times repeats) left, when every task can say its size; else None."""
    sizes = {task_id: task.size() for task_id, task in tasks.items()}  # once per task
    total = 0
    for unit in units:
        size = sizes[unit.task.id]
        if size is None:
            return None
        total += (size if unit.limit is None else min(size, unit.limit)) * unit.repeats
    return max(total - done, 0)


def backend_concurrency(backend: Backend, requested: int | None) -> int:
    own = int(getattr(backend, "max_concurrency", 1) or 1)
    return own if requested is None else min(own, requested)


def redact(value: Any, secrets: tuple[str, ...]) -> Any:
    """Provenance only (``manifest.json``: what plugins' ``info()`` reports): replace, inside
    strings, each ``${ENV}`` value of 4 characters or more with ``***``. Sample records are
    never rewritten: secrets stay out of them by field (parameters declared ``secret``)."""
    secrets = tuple(s for s in secrets if len(s) >= 4)
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, "***")
        return value
    if isinstance(value, dict):
        return {k: redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, secrets) for v in value]
    return value


def write_json_atomic(path: Path, data: Any) -> None:
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"
    write_atomic(path, text, durable=True)


def run_manifest(
    manifest: Manifest | str | Path,
    host: PluginHost | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    retry_errors: bool = False,
    adopt: bool = False,
) -> RunResult:
    """Run (or resume) a manifest into ``out`` (default ``run.out``, else ``runs/<name>``) and
    return the run's :class:`RunResult` (``.results`` is the content of ``results.json``).

    ``manifest`` is a :func:`load_manifest` result or a path to load. Running again into the
    same directory resumes: finished samples are never recomputed. ``retry_errors`` plays again
    the samples of an earlier run that ended in an error (an API outage, a wrong key).
    ``adopt`` continues a run directory whose ``manifest.json`` was lost, taking its records
    as this manifest's without the check a resume otherwise makes.

    >>> result = run_manifest("registry/manifests/replay-example.yaml", out="runs/x")
    >>> result.results["results"]["qa"]["recorded"]["exact_match"]
    0.75
    """
    host = host or PluginHost.current()
    if not isinstance(manifest, Manifest):
        manifest = load_manifest(manifest, host)
    run_dir = Path(out or manifest.run.out or default_out(manifest))
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: exists and is not a directory; choose another --out")
    return Run(manifest, host, run_dir, progress, retry_errors, adopt).execute()
