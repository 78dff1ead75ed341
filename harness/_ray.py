"""The Ray executor (``run.executor: ray``): work units played on Ray actors, records written
here. Imported only when a manifest asks for it, so ``import harness`` never imports Ray.

Why this shape:

- One actor per model replica (``run.ray.workers`` per backend), named ``harness:<backend>:<n>``
  (what Ray's dashboard shows). It builds its backend once, and each task and metric it plays,
  through the driver's plugins and a :class:`Builder` with the manifest's folder, so a local
  model loads once per worker. Actor ``n`` plays shard ``n`` of every task of its backend.
- An actor streams batches of records back (a Ray streaming generator: every record that
  finished while the last batch was on its way), and this process alone writes them through
  the run's ``emit``, so ``samples.jsonl``, resume, the tally, the report's digest, hooks and
  progress are those of a local run.
- A backend whose parameters declare ``max_concurrency`` (the limit of a server it calls, as
  ``openai``'s) shares one limiter actor: every request on every worker holds one of its slots,
  so the server sees at most that many (and ``run.concurrency`` if smaller), not that many per
  worker. Other backends' limits are per loaded copy.
- A worker that dies (a crash, an out-of-memory kill, a lost node) loses only the samples it
  was playing: a replacement actor (at most :data:`RESTARTS` per worker) plays the shard again,
  skipping every key already received, and the driver drops any record it already wrote.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import socket
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import replace
from pathlib import Path
from typing import Any
from typing import cast

import ray
from ray.exceptions import RayActorError
from ray.exceptions import RayTaskError

from harness._errors import HarnessError
from harness._manifest import Entry
from harness._manifest import Manifest
from harness._manifest import RayOptions
from harness._parts import Backend
from harness._parts import Builder
from harness._parts import Metric
from harness._parts import Task
from harness._play import Emit
from harness._play import WorkUnit
from harness._play import _finished
from harness._play import run_unit
from harness._plugins import PluginHost
from harness._plugins import reset_host
from harness._records import ChatRequest
from harness._records import ChatResponse
from harness._run import backend_concurrency
from harness._store import Key
from harness._store import record_key

log = logging.getLogger("harness")

RESTARTS = 3  # replacement actors per worker before the run stops (what finished is kept)
BATCH = 256  # the most records one streamed batch carries
#: (name, plugin object, package, version): the driver's plugins, as a worker registers them
Plugins = tuple[tuple[str, Any, str, str], ...]
Records = list[dict[str, Any]]


class RayExecutor:
    """Plays the run's units on Ray actors; see the module's docstring."""

    def __init__(
        self,
        manifest: Manifest,
        host: PluginHost,
        run_dir: Path,
        limits: dict[str, int],
        announce: bool = True,
    ) -> None:
        self.options = manifest.run.ray
        self.concurrency = manifest.run.concurrency
        self.plugins = shipped_plugins(host)
        self.run_dir, self.limits, self.announce = str(run_dir.resolve()), limits, announce
        self.namespace = f"harness-{uuid.uuid4().hex[:8]}"  # a run's actor names are its own
        self.stopping = threading.Event()
        self.limiters: list[Any] = []
        self.readers: list[threading.Thread] = []

    def play(self, units: list[WorkUnit], done: set[Key], emit: Emit) -> None:
        """Connect (or start a local Ray), play every unit's shards, and stop what this run
        started, however it ends."""
        context = connect(self.options.address)
        workers: list[Worker] = []
        try:
            count = workers_per_backend(self.options)
            self._say(count, context)
            workers = self._workers(units, count)
            self._collect(workers, done, emit)
        finally:
            self._stop(workers, context)

    def _stop(self, workers: list[Worker], context: Any) -> None:
        """Kill every actor, wait for the threads reading them (none may touch Ray once it
        is shut down), then disconnect if this run connected."""
        self.stopping.set()
        for handle in [*(w.actor for w in workers), *self.limiters]:
            kill(handle)
        for thread in self.readers:
            thread.join(timeout=30)
        if context is not None:
            ray.shutdown()

    def _say(self, count: int, context: Any) -> None:
        """One line: how many workers, on which cluster, and where its dashboard is."""
        if not self.announce:
            return
        where = self.options.address or "a local Ray started for this run"
        url = getattr(context, "dashboard_url", None)
        dashboard = f"; dashboard: http://{url}" if url else ""
        print(f"harness: ray: {count} worker(s) per backend on {where}{dashboard}", file=sys.stderr)

    def _workers(self, units: list[WorkUnit], count: int) -> list[Worker]:
        """``count`` workers per backend, worker ``n`` with shard ``n`` of each of its units."""
        by_backend: dict[str, list[WorkUnit]] = {}
        for unit in units:
            by_backend.setdefault(unit.backend.id, []).append(unit)
        workers = []
        for backend_id, own in by_backend.items():
            limiter = self._limiter(own[0].backend)
            for n in range(count):
                shards = [replace(u, shard=n, num_shards=count) for u in own]
                workers.append(Worker(f"harness:{backend_id}:{n}", shards, limiter, self))
        return workers

    def _limiter(self, backend: Entry) -> Any:
        """The backend's cluster-wide limiter, when it calls a server with a limit."""
        if "max_concurrency" not in backend.params:
            return None
        name = f"harness:{backend.id}:limiter"
        options = {"name": name, "namespace": self.namespace, "num_cpus": 0}
        limiter = LimiterActor.options(**options).remote(self.limits[backend.id])
        self.limiters.append(limiter)
        return limiter

    def spawn(self, name: str, limiter: Any) -> Any:
        """A worker actor, asking for the resources ``run.ray`` gives one worker."""
        options: dict[str, Any] = {
            "name": name,
            "namespace": self.namespace,
            "num_cpus": self.options.num_cpus,
            "num_gpus": self.options.num_gpus,
        }
        if self.options.memory_mb:
            options["memory"] = self.options.memory_mb * 2**20
        return WorkerActor.options(**options).remote(
            name, self.plugins, self.run_dir, self.concurrency, limiter
        )

    def _collect(self, workers: list[Worker], done: set[Key], emit: Emit) -> None:
        """Emit, on this thread, what every worker streams; each key once."""
        outbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        for worker in workers:
            reader = threading.Thread(
                target=worker.drive, args=(done, outbox), name=worker.name, daemon=True
            )
            self.readers.append(reader)
            reader.start()
        running, written = len(workers), set[Key]()
        while running:
            kind, value = _next(outbox)
            if kind == "error":
                raise value
            if kind == "end":
                running -= 1
                continue
            for record in value:
                _emit_once(record, done, written, emit)


def _next(outbox: queue.Queue[tuple[str, Any]]) -> tuple[str, Any]:
    """The next message, waiting in short steps so that Ctrl-C is seen at once."""
    while True:
        try:
            return outbox.get(timeout=0.2)
        except queue.Empty:
            continue


def _emit_once(record: dict[str, Any], done: set[Key], written: set[Key], emit: Emit) -> None:
    """Write a record unless its key was written before (a replacement replaying a shard)."""
    key = record_key(record)
    if key in written or _finished(done, key[:3], record.get("repeat", 0)):
        return
    written.add(key)
    emit(record)


class Worker:
    """The driver's side of one worker: its actor, its shards, the thread that reads its
    stream, and the replacements when the actor dies."""

    def __init__(
        self, name: str, units: list[WorkUnit], limiter: Any, executor: RayExecutor
    ) -> None:
        self.name, self.units, self.limiter, self.executor = name, units, limiter, executor
        self.deaths = 0
        self.actor_name = name
        self.actor = executor.spawn(name, limiter)

    def drive(self, done: set[Key], outbox: queue.Queue[tuple[str, Any]]) -> None:
        """Play every shard, then close the actor's parts and release it (its resources go
        to the next backend's workers); any failure goes to the driver's thread."""
        try:
            for unit in self.units:
                self._play(unit, done, outbox)
            self._close()
            outbox.put(("end", self.name))
        except BaseException as exc:
            outbox.put(("error", _unwrapped(exc)))

    def _play(self, unit: WorkUnit, done: set[Key], outbox: queue.Queue[tuple[str, Any]]) -> None:
        """Stream one shard; when the actor dies, again on a replacement, skipping what
        arrived."""
        received = {k for k in done if k[:2] == (unit.backend.id, unit.task.id)}
        while True:
            try:
                for ref in self.actor.play.remote(unit, received):
                    batch: Records = ray.get(ref)
                    received.update(map(record_key, batch))
                    outbox.put(("records", batch))
                return
            except RayActorError as exc:
                self._replace(exc)

    def _close(self) -> None:
        """Close the actor's parts (failures are logged, as a local run logs them), then
        end it: its resources go to the next backend's workers."""
        try:
            failures = ray.get(self.actor.close.remote())
        except RayActorError as exc:  # every record is in; a death now costs nothing
            failures = [f"{self.actor_name} died while closing: {exc}"]
        for failure in failures:
            log.warning("%s: %s", self.actor_name, failure)
        kill(self.actor)

    def _replace(self, exc: RayActorError) -> None:
        """A new actor for a dead one, at most :data:`RESTARTS` times; its slots of the
        limiter are given back."""
        if self.executor.stopping.is_set():
            raise exc
        self.deaths += 1
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if self.deaths > RESTARTS:
            raise HarnessError(
                f"ray worker {self.name} died {self.deaths} times (last: {reason}); what "
                "finished is kept: fix the cause, then rerun the same command to resume"
            )
        log.warning(
            "ray worker %s died (%s); a replacement plays its shard again", self.name, reason
        )
        if self.limiter is not None:
            self.limiter.forget.remote(self.actor_name)
        self.actor_name = f"{self.name}:r{self.deaths}"
        self.actor = self.executor.spawn(self.actor_name, self.limiter)


def kill(handle: Any) -> None:
    """End an actor; one already gone (or a cluster already stopped) is no error."""
    try:
        ray.kill(handle)
    except Exception as exc:
        log.debug("ray: could not kill an actor: %s", exc)


def _unwrapped(exc: BaseException) -> BaseException:
    """A worker's own :class:`HarnessError` (StopRun, a bad input) as itself, so the run ends
    with its one line; anything else keeps Ray's remote traceback."""
    cause = getattr(exc, "cause", None) if isinstance(exc, RayTaskError) else None
    return cause if isinstance(cause, HarnessError) else exc


# --- in the worker process ------------------------------------------------------------------


class WorkerParts:
    """A worker actor: one model replica. Parts are built on first use (an error there is
    the play call's, not the actor's death) and once for all the shards it plays."""

    def __init__(
        self, name: str, plugins: Plugins, run_dir: str, concurrency: int | None, limiter: Any
    ) -> None:
        self.name, self.plugins, self.run_dir = name, plugins, run_dir
        self.concurrency, self.limiter = concurrency, limiter
        self.builder: Builder | None = None

    def __repr__(self) -> str:  # Ray's logs and dashboard name the actor by it
        return self.name

    def play(self, unit: WorkUnit, done: set[Key]) -> Iterator[Records]:
        """Play the unit's unfinished samples; yield their records in batches."""
        task, backend, metrics = self._parts(unit)
        concurrency = max(1, backend_concurrency(backend, self.concurrency))
        yield from batches(
            lambda emit: run_unit(unit, (task, backend, metrics), done, concurrency, emit)
        )

    def close(self) -> list[str]:
        """Close every part built here (failures are returned, never raised)."""
        return self.builder.close() if self.builder is not None else []

    def _parts(self, unit: WorkUnit) -> tuple[Task, Backend, list[Metric]]:
        """The unit's parts, built through the driver's plugins on the first call; the
        builder keeps them, so the next shard (another task) reuses the loaded model."""
        if self.builder is None:
            host = registered_host(self.plugins)
            run_dir = Path(self.run_dir)
            self.builder = Builder(host, Path(unit.base_dir), unit.seed, run_dir)
        build = self.builder.build_entry
        backend = build(unit.backend)
        if self.limiter is not None:
            backend = LimitedBackend.of(backend, self.limiter, self.name)
        return build(unit.task), backend, [build(e) for e in unit.metrics]


def batches(produce: Callable[[Emit], None]) -> Iterator[Records]:
    """The records ``produce`` emits (on a thread of its own), in batches of all that finished
    while the last batch was on its way: a slow model streams each record at once, a fast one
    pays Ray's cost per batch, not per record."""
    box: queue.Queue[Any] = queue.Queue()
    threading.Thread(target=_produce, args=(produce, box), name="harness-unit", daemon=True).start()
    while True:
        items = _drain(box)
        records = [item for item in items if isinstance(item, dict)]
        if records:
            yield records
        if isinstance(items[-1], _End):  # always the last item put
            items[-1].raise_failure()
            return


def _produce(produce: Callable[[Emit], None], box: queue.Queue[Any]) -> None:
    """Play, then put how it ended as the last item (an exception must reach the driver)."""
    try:
        produce(box.put)
    except BaseException as exc:
        box.put(_End(exc))
        return
    box.put(_End())


def _drain(box: queue.Queue[Any]) -> list[Any]:
    """The next item (waiting for it), then whatever else is there, up to :data:`BATCH`."""
    items = [box.get()]
    while len(items) < BATCH and not box.empty():
        items.append(box.get_nowait())
    return items


@dataclass(frozen=True)
class _End:
    """The producer finished; with ``failure``, by raising it."""

    failure: BaseException | None = None

    def raise_failure(self) -> None:
        if self.failure is not None:
            raise self.failure


def registered_host(plugins: Plugins) -> PluginHost:
    """The driver's plugins, registered in this process and made its process-wide host
    (parts that build parts look it up)."""
    host = PluginHost()
    for name, plugin, package, version in plugins:
        host.register(plugin, name, package, version)
    reset_host(host)
    return host


def shipped_plugins(host: PluginHost) -> Plugins:
    """The driver's plugins as a worker registers them: an entry point's module travels by
    name (the worker imports it, as loading entry points does), a plugin registered by hand
    as the object it is; broken ones stay behind."""
    return tuple(
        (name, host.pm.get_plugin(name), info.package, info.version)
        for name, info in host.plugins.items()
        if info.error is None and host.pm.get_plugin(name) is not None
    )


class LimitedBackend:
    """The backend as a worker sees it when its server's limit is cluster-wide: every request
    holds one slot of the backend's limiter actor; everything else is the real backend's."""

    def __init__(self, backend: Backend, limiter: Any, holder: str) -> None:
        self._backend, self._limiter, self._holder = backend, limiter, holder

    @classmethod
    def of(cls, backend: Backend, limiter: Any, holder: str) -> Backend:
        """The proxy, typed as what tasks expect: a :class:`Backend`."""
        return cast(Backend, cls(backend, limiter, holder))

    def chat(self, request: ChatRequest) -> ChatResponse:
        with self._slot():
            return self._backend.chat(request)

    def complete(self, prompt: str, request: ChatRequest) -> ChatResponse:
        with self._slot():
            return self._backend.complete(prompt, request)

    def loglikelihood(self, context: str, continuation: str) -> tuple[float, bool]:
        with self._slot():
            return self._backend.loglikelihood(context, continuation)

    @contextmanager
    def _slot(self) -> Iterator[None]:
        ray.get(self._limiter.acquire.remote(self._holder))
        try:
            yield
        finally:
            self._limiter.release.remote(self._holder)

    def __getattr__(self, name: str) -> Any:
        if name == "_backend":  # not set yet (copy, pickle): no endless recursion
            raise AttributeError(name)
        return getattr(self._backend, name)


class Limiter:
    """A semaphore for the whole cluster (an async actor: waiting costs no thread). Slots are
    counted per holder, so a dead worker's slots can be given back (:meth:`forget`)."""

    def __init__(self, slots: int) -> None:
        self._free = asyncio.Semaphore(max(1, slots))
        self._held: Counter[str] = Counter()
        self._gone: set[str] = set()

    async def acquire(self, holder: str) -> None:
        await self._free.acquire()
        if holder in self._gone:  # its worker died while it waited
            self._free.release()
            return
        self._held[holder] += 1

    async def release(self, holder: str) -> None:
        if self._held[holder] > 0:
            self._held[holder] -= 1
            self._free.release()

    async def forget(self, holder: str) -> None:
        self._gone.add(holder)
        for _ in range(self._held.pop(holder, 0)):
            self._free.release()


WorkerActor: Any = ray.remote(WorkerParts)
LimiterActor: Any = ray.remote(Limiter)


# --- the cluster ----------------------------------------------------------------------------


def connect(address: str | None) -> Any:
    """Connect to the cluster at ``address``, or start a local Ray (``None``). Returns Ray's
    context when this call connected (the run then disconnects, and stops a Ray it started,
    when it ends); None when this process was connected already (a notebook's Ray stays)."""
    if ray.is_initialized():
        return None
    check_reachable(address)
    try:
        return ray.init(
            address=address or "local", log_to_driver=False, logging_level=logging.WARNING
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise unreachable(address, exc) from None


def check_reachable(address: str | None) -> None:
    """A ``host:port`` head that does not answer fails here in seconds; Ray itself would
    retry for minutes."""
    if not address or address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except (OSError, ValueError) as exc:
        raise unreachable(address, exc) from None


def unreachable(address: str | None, exc: Exception) -> HarnessError:
    """One line: what could not be reached, why, and the ways out (exit 1: the run directory
    is written and resumable)."""
    where = f"Ray at {address!r}" if address else "a local Ray"
    return HarnessError(
        f"run.ray.address: cannot connect to {where} ({exc}); start a head node with "
        "`ray start --head` and give its address (a cluster with token authentication also "
        "needs RAY_AUTH_MODE=token here), or leave run.ray.address null"
    )


def workers_per_backend(options: RayOptions) -> int:
    """``run.ray.workers``, else as many as the cluster's CPUs allow; refuse a worker the
    cluster could never place (it would wait for ever)."""
    resources: Callable[[], dict[str, float]] = ray.cluster_resources  # untyped in Ray
    total = resources()
    asks = {"CPU": options.num_cpus, "GPU": options.num_gpus}
    asks["memory"] = (options.memory_mb or 0) * 2**20
    short = [
        f"{name} {ask:g} (the cluster has {total.get(name, 0):g})"
        for name, ask in asks.items()
        if ask > total.get(name, 0)
    ]
    if short:
        raise HarnessError(
            f"run.ray: one worker asks for more than the whole cluster has: {', '.join(short)}; "
            "lower run.ray.num_cpus / num_gpus / memory_mb, or add nodes"
        )
    return options.workers or max(1, int(total.get("CPU", 1) // options.num_cpus))
