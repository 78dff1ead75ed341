"""The ``device`` backend: the wrapped backend in a worker process, its memory watched.

The worker is a fresh interpreter (``spawn``): it builds the wrapped backend from its manifest
entry through the same plugin host and answers requests over a pipe. Requests and responses are
the records every backend exchanges, so they pickle as they are. While the worker loads and
while it answers, a thread reads its resident memory (``/proc/<pid>/status``) every
``poll_ms``; over the cap, the worker is killed and the run stops with :class:`StopRun`.
"""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path
from typing import Any

from harness import Backend
from harness import BuildContext
from harness import ChatRequest
from harness import ChatResponse
from harness import HarnessError
from harness import StopRun

from . import CONTEXT
from . import THREADS
from . import DeviceParams
from . import check_fits


class DeviceBackend(Backend):
    """Forwards every request to the worker; one at a time, like the local backends."""

    max_concurrency = 1
    params: DeviceParams

    def __init__(self, params: DeviceParams, context: BuildContext) -> None:
        super().__init__(params, context)
        check_fits(params, context.base_dir)
        self.limits = params.limits()
        self.spec = wrapped_spec(params.backend, self.limits)
        self._lock = threading.Lock()
        self._worker = Worker(self.spec, context, self.limits.get("memory_mb"), params.poll_ms)
        self.info_of_wrapped, self.capabilities = self._worker.start()

    def chat(self, request: ChatRequest) -> ChatResponse:
        with self._lock:
            reply, peak = self._worker.ask(request, f"answering sample {request.sample_id!r}")
        return _with_peak(reply["response"], peak)

    def complete(self, prompt: str, request: ChatRequest) -> ChatResponse:
        """The wrapped backend's raw text completion, in the worker."""
        with self._lock:
            reply, peak = self._worker.ask(("complete", prompt, request), "completing a text")
        return _with_peak(reply["response"], peak)

    def loglikelihood(self, context: str, continuation: str) -> tuple[float, bool]:
        """The wrapped backend's ``loglikelihood``, in the worker (only two numbers cross)."""
        with self._lock:
            message = ("loglikelihood", context, continuation)
            reply, _ = self._worker.ask(message, "scoring a continuation")
        return float(reply["loglikelihood"]), bool(reply["greedy"])

    def tokenize(self, text: str) -> list[int]:
        """The wrapped backend's token ids of ``text``, from the worker."""
        with self._lock:
            reply, _ = self._worker.ask(("tokenize", text), "tokenizing a text")
        return list(reply["ids"])

    def logprobs(self, text: str) -> tuple[list[int], Any]:
        """The wrapped backend's ``logprobs`` (when it has the capability), in the worker."""
        with self._lock:
            reply, _ = self._worker.ask(("logprobs", text), "scoring a text")
        return reply["ids"], reply["rows"]

    def info(self) -> dict[str, Any]:
        return {
            "wrapped": self.spec.get("type"),
            "limits": self.limits,
            "worker_peak_rss_mb_after_load": round(self._worker.load_peak_mb, 1),
            **{f"wrapped_{k}": v for k, v in self.info_of_wrapped.items()},
        }

    def close(self) -> None:
        self._worker.stop()


def wrapped_spec(spec: dict[str, Any], limits: dict[str, int | None]) -> dict[str, Any]:
    """The wrapped entry with the device's threads and context length filled in."""
    kind = str(spec.get("type"))
    out = dict(spec)
    for limit, names in (("threads", THREADS), ("n_ctx", CONTEXT)):
        if limits.get(limit) and kind in names:
            out[names[kind]] = limits[limit]
    return out


def _with_peak(response: ChatResponse, peak_mb: float) -> ChatResponse:
    timing = {**response.timing, "peak_rss_mb": round(peak_mb, 1)}
    return ChatResponse(
        text=response.text,
        tool_calls=response.tool_calls,
        input_tokens=response.input_tokens,
        output_tokens=response.output_tokens,
        finish_reason=response.finish_reason,
        timing=timing,
        extra=response.extra,
    )


class Worker:
    """A worker process serving one wrapped backend, and the watch on its memory."""

    def __init__(
        self, spec: dict[str, Any], context: BuildContext, cap_mb: int | None, poll_ms: int
    ) -> None:
        self.spec, self.cap_mb, self.poll_s = spec, cap_mb, poll_ms / 1000
        self.where = (str(context.base_dir), context.seed, context.id)
        self.load_peak_mb = 0.0
        self._process: Any = None
        self._pipe: Any = None

    def start(self) -> tuple[dict[str, Any], frozenset[str]]:
        ctx = multiprocessing.get_context("spawn")
        self._pipe, child = ctx.Pipe()
        self._process = ctx.Process(target=serve, args=(child, self.spec, self.where), daemon=True)
        self._process.start()
        child.close()
        reply, self.load_peak_mb = self._watched("loading the model")
        return reply["info"], frozenset(reply["capabilities"])

    def ask(self, message: Any, doing: str) -> tuple[dict[str, Any], float]:
        """Send a request (or ``(verb, *args)``: complete, loglikelihood, logprobs, tokenize);
        the reply and the worker's peak MiB."""
        self._pipe.send(message)
        return self._watched(doing)

    def _watched(self, doing: str) -> tuple[dict[str, Any], float]:
        """Wait for the worker's reply, reading its memory; over the cap, stop the run."""
        peak = 0.0
        while not self._pipe.poll(self.poll_s):
            peak = max(peak, self._check(doing))
            if not self._process.is_alive():
                raise StopRun(f"device worker died while {doing} (exit {self._process.exitcode})")
        reply = self._pipe.recv()
        peak = self._limit(max(peak, reply.get("peak_rss_mb", 0.0)), doing)  # the kernel's peak
        if "error" in reply:
            raise _error(reply)
        return reply, peak

    def _check(self, doing: str) -> float:
        return self._limit(rss_mb(self._process.pid), doing)

    def _limit(self, rss: float, doing: str) -> float:
        if self.cap_mb is not None and rss > self.cap_mb:
            self.stop()
            raise StopRun(
                f"device memory cap exceeded while {doing}: the model process reached "
                f"{rss:.1f} MiB, over the cap of {self.cap_mb} MiB; raise memory_mb or pick a "
                "smaller variant (finished samples are kept; run again to resume)"
            )
        return rss

    def stop(self) -> None:
        if self._process is not None and self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=5)


def _error(reply: dict[str, Any]) -> Exception:
    """The worker's failure, as the kind of error it was (set-up errors keep their exit code)."""
    if reply.get("fatal"):
        error = HarnessError(reply["error"])
        error.exit_code = int(reply.get("exit_code", 1))
        return error
    return RuntimeError(reply["error"])


def rss_mb(pid: int) -> float:
    """Resident memory of a process (MiB), from ``/proc``; 0 when it cannot be read."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def serve(pipe: Any, spec: dict[str, Any], where: tuple[str, int | None, str]) -> None:
    """The worker's main loop: build the wrapped backend, then answer until the pipe closes."""
    from harness_plugins.shared.memory import peak_rss_mb

    base_dir, seed, owner = where
    try:
        backend = BuildContext(owner, Path(base_dir), seed=seed).build("backend", spec)
    except HarnessError as exc:
        pipe.send({"error": str(exc), "fatal": True, "exit_code": exc.exit_code})
        return
    info = backend.info() if hasattr(backend, "info") else {}
    capabilities = sorted(getattr(backend, "capabilities", ()) or ())
    pipe.send({"info": info, "capabilities": capabilities, "peak_rss_mb": peak_rss_mb()})
    while True:
        try:
            request = pipe.recv()
        except EOFError:
            return
        try:
            reply = _answer(backend, request)
        except Exception as exc:
            pipe.send({"error": f"{type(exc).__name__}: {exc}"})
            continue
        pipe.send(reply | {"peak_rss_mb": peak_rss_mb()})


def _answer(backend: Any, message: Any) -> dict[str, Any]:
    """A chat request's response, or what a ``(verb, *args)`` message asks for."""
    if isinstance(message, tuple) and message[0] == "complete":
        return {"response": backend.complete(message[1], message[2])}
    if isinstance(message, tuple) and message[0] == "loglikelihood":
        total, greedy = backend.loglikelihood(message[1], message[2])
        return {"loglikelihood": total, "greedy": greedy}
    if isinstance(message, tuple) and message[0] == "logprobs":
        ids, rows = backend.logprobs(message[1])
        return {"ids": ids, "rows": rows}
    if isinstance(message, tuple) and message[0] == "tokenize":
        return {"ids": backend.tokenize(message[1])}
    return {"response": backend.chat(message)}
