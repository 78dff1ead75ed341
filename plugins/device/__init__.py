"""Backend ``device``: any local backend run with the limits of a phone or a small laptop.

The wrapped backend (``backend``: a manifest entry, e.g. ``{type: onnx, model: ...}``) is built
and served in a worker process; the harness reads that process's resident memory while it
loads and answers, and stops the run (exit 1, finished samples kept, resumable) the moment it
goes over ``memory_mb``. A model whose weights alone exceed the cap is refused before anything
starts (exit 2). Threads and context length are handed to the wrapped backend. Responses carry
the worker's peak memory, which the ``efficiency`` metric reports as ``peak_rss_mb``.

Hooks and parameters only: the backend lives in :mod:`harness_plugins.device._backend`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness import InputError
from harness import Operational
from harness import Params
from harness import Register
from harness import hookimpl
from harness import param

#: Named profiles: the limits of a class of device (memory for the model process, CPU threads,
#: context length). Explicit parameters override them.
PROFILES: dict[str, dict[str, int]] = {
    "phone-2gb": {"memory_mb": 1024, "threads": 2, "n_ctx": 2048},
    "phone-4gb": {"memory_mb": 2048, "threads": 4, "n_ctx": 4096},
    "phone-8gb": {"memory_mb": 4096, "threads": 6, "n_ctx": 4096},
    "laptop-8gb": {"memory_mb": 6144, "threads": 4, "n_ctx": 8192},
}
#: How each local backend spells the thread count and context length.
THREADS = {"onnx": "threads", "llamacpp": "n_threads"}
CONTEXT = {"onnx": "n_ctx", "llamacpp": "n_ctx"}


@hookimpl
def register_backends(register: Register) -> None:
    register("device", "harness_plugins.device._backend:DeviceBackend", params=DeviceParams)


class DeviceParams(Params):
    """A local backend (onnx, llamacpp) in a worker process under a device's limits."""

    backend: dict[str, Any] = param(
        description="The wrapped backend's manifest entry, e.g. {type: onnx, model: ...}.",
        schema={"required": ["type"]},
    )
    profile: str | None = param(
        None,
        description=f"Named limits: {', '.join(PROFILES)}; the fields below override them.",
    )
    memory_mb: Operational[int | None] = param(
        None, minimum=16, description="Hard cap on the model process's resident memory (MiB)."
    )
    threads: Operational[int | None] = param(
        None, minimum=1, description="CPU threads for the wrapped backend."
    )
    n_ctx: int | None = param(None, minimum=16, description="Context length in tokens.")
    poll_ms: Operational[int] = param(
        20, minimum=1, description="How often the worker's memory is read (milliseconds)."
    )

    def limits(self) -> dict[str, int | None]:
        """The profile's limits with the explicit fields on top."""
        base: dict[str, int | None] = dict(PROFILES.get(self.profile or "", {}))
        for name in ("memory_mb", "threads", "n_ctx"):
            if getattr(self, name) is not None:
                base[name] = getattr(self, name)
        return base

    def capabilities(self) -> frozenset[str] | None:
        """The wrapped backend's, as its own parameters say."""
        from harness import PluginHost

        spec = {k: v for k, v in self.backend.items() if k not in ("type", "id")}
        try:
            component = PluginHost.current().component("backend", str(self.backend["type"]))
        except Exception:  # an unknown type is reported by the wrapped entry's own check
            return None
        params_class = component.params_class
        return params_class.from_mapping(spec).capabilities() if params_class else None

    def preflight(self, base_dir: Path) -> list[str]:
        """A known profile, and weights that fit the memory cap."""
        if self.profile is not None and self.profile not in PROFILES:
            return [f"profile: unknown {self.profile!r}; use one of {', '.join(PROFILES)}"]
        try:
            check_fits(self, base_dir)
        except InputError as exc:
            return [str(exc)]
        return []


def check_fits(params: DeviceParams, base_dir: Path) -> None:
    """Refuse a model whose weights on disk alone exceed the memory cap."""
    from harness_plugins.shared.models import model_size_bytes

    cap = params.limits().get("memory_mb")
    model = params.backend.get("model")
    size = model_size_bytes(str(model), base_dir) if cap and model else None
    if size is not None and cap is not None and size > cap * 1024 * 1024:
        raise InputError(
            f"backend.model: {model} holds {size / 2**20:.0f} MiB of weights, more than the "
            f"device's memory cap of {cap} MiB; pick a smaller (more quantized) variant or "
            "raise memory_mb"
        )
