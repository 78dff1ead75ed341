"""``harness serve``: any configured backend as an OpenAI-compatible chat-completions server.

Hooks only (cheap to import): aiohttp and the server live in :mod:`harness_plugins.serve._app`,
imported when the command runs. The backend comes from a run manifest (its ``backends``
list, ``--backend`` picks one by id) or from ``--gguf PATH_OR_CARD``, which builds a
``llamacpp`` backend without a manifest. See ``docs/serve.md``.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import click
import yaml

from harness import BuildContext
from harness import HarnessError
from harness import ManifestError
from harness import PluginHost
from harness import hookimpl

if TYPE_CHECKING:
    from harness import Entry

TOOL_MODES = ("auto", "native", "constrained")


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(serve)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_host(ctx: click.Context, param: click.Parameter, host: str) -> str:
    """Refuse a non-loopback address unless --allow-remote: the server has no authentication."""
    if is_loopback(host):
        return host
    if not ctx.params.get("allow_remote"):
        raise click.BadParameter(
            f"{host} is not a loopback address; the server has no authentication, so "
            "listening on other interfaces needs --allow-remote",
            ctx,
            param,
        )
    click.echo(
        f"harness serve: warning: listening on {host}: anyone who can reach it can use the "
        "model (no authentication)",
        err=True,
    )
    return host


@click.command()
@click.argument("manifest", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--backend", "backend_id", metavar="ID", help="Which backend of the manifest.")
@click.option(
    "--gguf",
    metavar="PATH_OR_CARD",
    help="Serve a GGUF file or model card (e.g. smollm2-135m-instruct) without a manifest.",
)
@click.option("--allow-remote", is_flag=True, is_eager=True, help="Allow a non-loopback --host.")
@click.option(
    "--host", default="127.0.0.1", show_default=True, callback=_check_host, help="Address."
)
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port; 0 picks a free one (printed).",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a manifest field, e.g. --set backends[0].n_ctx=2048 (also with --gguf).",
)
@click.option(
    "--tool-mode",
    type=click.Choice(TOOL_MODES),
    default="auto",
    show_default=True,
    help="How requests with tools are served (see docs/serve.md).",
)
def serve(
    manifest: Path | None,
    backend_id: str | None,
    gguf: str | None,
    allow_remote: bool,
    host: str,
    port: int,
    sets: tuple[str, ...],
    tool_mode: str,
) -> None:
    """Serve a backend of MANIFEST as an OpenAI-compatible API at http://HOST:PORT/v1.

    POST /v1/chat/completions (tools, tool_choice, stream), POST /v1/completions and
    GET /v1/models. Ctrl-C stops it.
    """
    entry, base_dir, seed, tasks = _pick_entry(manifest, gguf, backend_id, sets)
    context = BuildContext(id="serve", base_dir=base_dir, seed=seed)
    spec = {"type": entry.type, **entry.params}
    try:  # invalid parameters are a usage error (exit 2); a backend that fails to start is not
        build = context.build("backend", spec, id=entry.id, lazy=True)
    except HarnessError as exc:
        raise ManifestError([f"{manifest or '--gguf ' + str(gguf)}: {exc}"]) from None
    backend = build()
    try:
        index = _sample_index(backend, tasks, context)
        _run(backend, entry.id, host, port, tool_mode, index)
    finally:
        backend.close()


def _sample_index(backend: Any, tasks: tuple[Entry, ...], context: BuildContext) -> Any:
    """For a backend that answers by (task, sample id), as ``replay`` does: which sample of
    the manifest's tasks each conversation is, so a served request can be looked up."""
    if "sample_lookup" not in (getattr(backend, "capabilities", None) or ()):
        return None
    from harness_plugins.serve._app import SampleIndex

    built = {}
    for entry in tasks:
        built[entry.id] = context.build("task", {"type": entry.type, **entry.params}, id=entry.id)
    try:
        return SampleIndex.from_tasks(built)
    finally:
        for task in built.values():
            task.close()


def _run(backend: Any, model: str, host: str, port: int, tool_mode: str, index: Any = None) -> None:
    from harness_plugins.serve._app import run_server

    def ready(url: str) -> None:
        click.echo(f"harness serve: backend {model!r} at {url} (Ctrl-C stops)", nl=True)
        click.get_text_stream("stdout").flush()

    try:
        run_server(backend, model, host, port, ready, tool_mode, index)
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None
    click.echo("harness serve: stopped", err=True)


def _pick_entry(
    manifest: Path | None, gguf: str | None, backend_id: str | None, sets: tuple
) -> tuple[Entry, Path, int | None, tuple[Entry, ...]]:
    """The backend entry to serve, the folder its relative paths start from, the seed, and
    the manifest's tasks."""
    if (manifest is None) == (gguf is None):
        raise click.UsageError("give a MANIFEST or --gguf PATH_OR_CARD (one of them)")
    if gguf is not None:
        return _gguf_entry(gguf, sets), Path.cwd(), None, ()
    from harness import load_manifest

    loaded = load_manifest(manifest, PluginHost.current(), sets)
    return (
        _select(loaded.backends, backend_id, str(manifest)),
        loaded.path.resolve().parent,
        loaded.run.seed,
        loaded.tasks,
    )


def _select(backends: tuple[Entry, ...], backend_id: str | None, label: str) -> Entry:
    ids = ", ".join(e.id for e in backends)
    if backend_id is None:
        if len(backends) == 1:
            return backends[0]
        raise ManifestError(
            [f"{label}: backends: several backends ({ids}); pick one: --backend ID"]
        )
    for entry in backends:
        if entry.id == backend_id:
            return entry
    raise ManifestError([f"{label}: --backend {backend_id}: no backend with that id ({ids})"])


def _gguf_entry(spec: str, sets: tuple[str, ...]) -> Entry:
    """A ``llamacpp`` entry for ``--gguf`` (validated when it is built); ``--set
    backends[0].KEY=VALUE`` (or ``KEY=VALUE``) sets its parameters."""
    from harness import Entry

    name = Path(spec).stem if spec.endswith(".gguf") else Path(spec).name
    params: dict[str, Any] = {"model": spec}
    for item in sets:
        key, sep, value = item.partition("=")
        key = key.strip().removeprefix("backends[0].")
        if not sep or not key or "." in key or "[" in key:
            raise ManifestError([f"--gguf {spec}: --set {item}: expected backends[0].KEY=VALUE"])
        params[key] = yaml.safe_load(value) if value.strip() else ""
    return Entry("backend", _safe_id(name), "llamacpp", params, {"type": "llamacpp", **params})


def _safe_id(name: str) -> str:
    """A model name that fits the manifest's id pattern."""
    cleaned = "".join(c if c.isalnum() or c in "_.:-" else "-" for c in name).lstrip("_.:-")
    return cleaned or "llamacpp"
