"""The plugin contract: every hook a plugin may implement.

This module *is* the protocol between the core and its plugins. Each hook is documented in
``docs/plugin-hooks.md`` with an example; a test fails when one is missing there.

Plugins are Python modules (or objects) named by an entry point in the ``harness`` group. They
implement hooks with the :data:`hookimpl` marker::

    from harness import hookimpl

    @hookimpl
    def register_backends(register):
        register("echo", "my_package.echo:EchoBackend", schema={...})

Registration hooks take a ``register`` callback and a *lazy* factory (a callable, or a
``"module:attribute"`` string imported on first use), so a plugin that wraps a heavy runtime
(llama.cpp, ONNX Runtime, lm-eval) costs nothing until a manifest asks for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from harness.records import RunInfo
    from harness.registry import Register

PROJECT = "harness"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --- registration -------------------------------------------------------------------------


@hookspec
def register_backends(register: Register) -> None:
    """Register model backends: things that answer a :class:`~harness.records.ChatRequest`.

    Call ``register(name, factory, schema=..., description=...)`` once per backend. ``factory``
    builds a :class:`~harness.interfaces.Backend` from the manifest entry's parameters.
    """


@hookspec
def register_tasks(register: Register) -> None:
    """Register tasks: things that yield :class:`~harness.records.Sample` records and score them.

    ``factory`` builds a :class:`~harness.interfaces.Task` from the manifest entry's parameters.
    """


@hookspec
def register_metrics(register: Register) -> None:
    """Register metrics: functions of a sample and its outcome that return named numbers.

    ``factory`` builds a :class:`~harness.interfaces.Metric` from the manifest entry's parameters.
    """


@hookspec
def register_decoders(register: Register) -> None:
    """Register output decoders: raw model text or native tool calls to a list of calls.

    ``factory`` builds a :class:`~harness.interfaces.Decoder`; tasks pick one by name (a
    task parameter such as ``decoder: python_calls``). Decoders parse, never evaluate.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add sub-commands to the ``harness`` command line (``cli.command()``, ``cli.add_command``)."""


# --- run lifecycle ------------------------------------------------------------------------


@hookspec
def on_run_start(run: RunInfo) -> None:
    """Called once before the first sample of a run (or of a resumed run) is played.

    ``run`` says where the run directory is, what the resolved manifest is and how many samples
    were already finished. Loggers and experiment trackers start here.
    """


@hookspec
def on_sample_finished(run: RunInfo, record: dict[str, Any]) -> None:
    """Called after each sample's record has been appended to ``samples.jsonl``.

    ``record`` is the JSON-ready dictionary that was written. Keep the hook cheap: it runs on
    the writer's thread, once per sample.
    """


@hookspec
def on_run_end(run: RunInfo, results: dict[str, Any] | None, status: str) -> None:
    """Called once when a run stops, whatever the reason.

    ``status`` is ``"finished"``, ``"failed"`` or ``"interrupted"``; ``results`` is the content
    of ``results.json`` when the run finished, else ``None``.
    """
