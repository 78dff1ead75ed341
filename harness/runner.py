"""Running a manifest: build the parts, play every unfinished sample, write results.

The run directory is the single source of truth: ``samples.jsonl`` grows as samples finish,
and everything else (``results.json``, ``summary.csv``, ``report.html``) is derived from it, so
an interrupted run resumes by skipping the keys already there.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import sha256
from pathlib import Path
from typing import Any

from harness import provenance
from harness.errors import RunDirError
from harness.execute import WorkUnit, build, default_metric_entries, run_unit
from harness.interfaces import Backend, Metric, Task
from harness.manifest import Entry, Manifest
from harness.plugins import PluginHost
from harness.progress import Progress
from harness.records import RunInfo, SampleRecord
from harness.report import write_report
from harness.results import MANIFEST, write_results
from harness.store import SAMPLES, SampleWriter, drop_errors, finished_keys


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    status: str
    results: dict[str, Any] | None
    played: int
    skipped: int


def default_out(manifest: Manifest) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in manifest.name)
    return Path("runs") / safe


def plan_sha256(manifest: Manifest) -> str:
    """Hash of what decides the records (not limit, out or concurrency): resume is allowed
    only into a run directory made by the same plan."""
    plan = {k: v for k, v in manifest.raw.items() if k not in ("run", "description")}
    plan["seed"] = (manifest.raw.get("run") or {}).get("seed")
    return sha256(json.dumps(plan, sort_keys=True, default=str).encode()).hexdigest()


def check_run_dir(run_dir: Path, manifest: Manifest) -> dict[str, Any] | None:
    """Return the existing ``manifest.json`` when resuming; refuse another plan's directory."""
    path = run_dir / MANIFEST
    if not path.exists():
        if (run_dir / SAMPLES).exists():
            raise RunDirError(
                f"{run_dir}: has samples.jsonl but no manifest.json; "
                "it is not a harness run directory (choose another --out)"
            )
        return None
    try:
        existing = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RunDirError(f"{path}: unreadable ({exc}); choose another --out") from None
    if existing.get("plan_sha256") != plan_sha256(manifest):
        raise RunDirError(
            f"{run_dir}: holds a run of a different manifest (backends, tasks, metrics or seed "
            "changed); pass --out with a new directory, or delete this one to start over"
        )
    return existing


class Run:
    """One execution of a manifest into a run directory."""

    def __init__(
        self,
        manifest: Manifest,
        host: PluginHost,
        run_dir: Path,
        progress: bool = True,
        retry_errors: bool = False,
    ) -> None:
        self.manifest, self.host, self.run_dir = manifest, host, run_dir
        self.show_progress = progress
        self.retry_errors = retry_errors
        self.base_dir = manifest.path.resolve().parent
        self.seed = manifest.run.seed
        self.played = 0

    def execute(self) -> RunResult:
        existing = check_run_dir(self.run_dir, self.manifest)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if existing and self.retry_errors:
            drop_errors(self.run_dir / SAMPLES)
        done = finished_keys(self.run_dir / SAMPLES)
        with ExitStack() as stack:
            parts = self._build_parts(stack)
            doc = self._write_manifest(existing, parts)
            info = RunInfo(str(self.run_dir), self.manifest.name, doc, len(done))
            return self._play(info, parts, done)

    # --- building ---------------------------------------------------------------------------

    def _build_parts(self, stack: ExitStack) -> dict[str, Any]:
        backends: dict[str, Backend] = {}
        for entry in self.manifest.backends:
            backends[entry.id] = build(self.host, entry, self.base_dir, self.seed)
            stack.callback(backends[entry.id].close)
        tasks: dict[str, Task] = {
            e.id: build(self.host, e, self.base_dir, self.seed) for e in self.manifest.tasks
        }
        metrics = {
            task_id: default_metric_entries(task, self.manifest.metrics)
            for task_id, task in tasks.items()
        }
        for entries in metrics.values():
            for entry in entries:
                self.host.component("metric", entry.type)  # unknown default metric: clear error
        return {"backends": backends, "tasks": tasks, "metric_entries": metrics}

    def _metrics_for(self, entries: tuple[Entry, ...]) -> list[Metric]:
        return [build(self.host, e, self.base_dir, self.seed) for e in entries]

    # --- provenance -------------------------------------------------------------------------

    def _write_manifest(self, existing: dict[str, Any] | None, parts: dict[str, Any]) -> dict:
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
            "environment": provenance.environment(),
            "plugins": provenance.plugin_versions(self.host, self.manifest, used_metrics),
            "data": {tid: self._task_provenance(t) for tid, t in parts["tasks"].items()},
            "backends": {bid: b.info() for bid, b in parts["backends"].items()},
        }
        write_json_atomic(self.run_dir / MANIFEST, redact(doc, self.manifest.env_values))
        return doc

    @staticmethod
    def _task_provenance(task: Task) -> dict[str, Any]:
        files = [Path(p) for p in task.data_files()]
        return {**task.info(), **provenance.data_fingerprint(files)}

    def results_context(self, doc: dict[str, Any]) -> dict[str, Any]:
        m = self.manifest
        return {
            "configs": {e.id: e.raw for e in m.tasks},
            "backends": {e.id: e.raw for e in m.backends},
            "metrics": {e.id: e.raw for e in m.metrics},
            "versions": {
                "harness": doc["environment"]["harness"],
                "plugins": doc["plugins"],
                "data": {tid: d["sha256"] for tid, d in doc["data"].items()},
            },
            "config": {
                "name": m.name,
                "seed": m.run.seed,
                "limit": m.run.limit,
                "manifest_sha256": doc["plan_sha256"],
            },
        }

    # --- playing ----------------------------------------------------------------------------

    def _play(self, info: RunInfo, parts: dict[str, Any], done: set) -> RunResult:
        self.host.run_start(info)
        units = self._units(parts)
        total = _expected_total(units, parts["tasks"], len(done))
        progress = Progress(total, f"harness {self.manifest.name}", enabled=self.show_progress)
        writer = SampleWriter(self.run_dir / SAMPLES, self.manifest.run.flush_every)
        status = "failed"
        try:
            for unit in units:
                self._run_unit(unit, parts, done, writer, progress, info)
            status = "finished"
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        finally:
            writer.close()
            progress.close()
            if status != "finished":
                self.host.run_end(info, None, status)
        results = write_results(self.run_dir, self.results_context(info.manifest))
        write_report(self.run_dir)
        self.host.run_end(info, results, status)
        return RunResult(self.run_dir, status, results, self.played, len(done))

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
            )
            for backend in m.backends
            for task in m.tasks
        ]

    def _run_unit(
        self,
        unit: WorkUnit,
        parts: dict[str, Any],
        done: set,
        writer: SampleWriter,
        progress: Progress,
        info: RunInfo,
    ) -> None:
        backend = parts["backends"][unit.backend.id]
        task = parts["tasks"][unit.task.id]
        metrics = self._metrics_for(unit.metrics)
        concurrency = max(1, backend_concurrency(backend, self.manifest.run.concurrency))
        hooks = self.host.has_sample_hooks()

        def emit(record: SampleRecord) -> None:
            data = redact(record.to_dict(), self.manifest.env_values)
            writer.write(data)
            self.played += 1
            progress.update()
            if hooks:
                self.host.sample_finished(info, data)

        run_unit(unit, (task, backend, metrics), done, concurrency, emit)


def _expected_total(units: list[WorkUnit], tasks: dict[str, Task], done: int) -> int | None:
    """Samples left to play, when every task can say its size; else None (no ETA)."""
    total = 0
    for unit in units:
        size = tasks[unit.task.id].size()
        if size is None:
            return None
        total += size if unit.limit is None else min(size, unit.limit)
    return max(total - done, 0)


def backend_concurrency(backend: Backend, requested: int | None) -> int:
    own = int(getattr(backend, "max_concurrency", 1) or 1)
    return own if requested is None else min(own, requested)


def redact(value: Any, secrets: tuple[str, ...]) -> Any:
    """Replace every occurrence of an ``${ENV}`` value (an API key, say) with ``***``."""
    secrets = tuple(s for s in secrets if len(s) >= 4)
    if not secrets:
        return value
    text = json.dumps(value, ensure_ascii=False)
    if not any(s in text for s in secrets):
        return value
    for secret in secrets:
        text = text.replace(json.dumps(secret)[1:-1], "***")
    return json.loads(text)


def write_json_atomic(path: Path, data: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, ensure_ascii=False, default=str)
        handle.write("\n")
    os.replace(tmp, path)


def run_manifest(
    manifest: Manifest,
    host: PluginHost,
    out: str | Path | None = None,
    progress: bool = True,
    retry_errors: bool = False,
) -> RunResult:
    """Run (or resume) a manifest into ``out`` (default ``run.out``, else ``runs/<name>``).

    ``retry_errors`` plays again the samples of an earlier run that ended in an error (an API
    outage, a wrong key); scored samples are never recomputed.
    """
    run_dir = Path(out or manifest.run.out or default_out(manifest))
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: exists and is not a directory; choose another --out")
    return Run(manifest, host, run_dir, progress, retry_errors).execute()
