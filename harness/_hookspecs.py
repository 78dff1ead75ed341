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

from typing import TYPE_CHECKING
from typing import Any

import pluggy

if TYPE_CHECKING:
    import click

    from harness._plugins import Register
    from harness._records import ReportSection
    from harness._records import RunEnded
    from harness._records import RunInfo
    from harness._records import RunStarted
    from harness._records import SampleFinished
    from harness._results import RunView

PROJECT = "harness"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --- registration -------------------------------------------------------------------------


@hookspec
def register_backends(register: Register) -> None:
    """Register model backends: things that answer a :class:`~harness.ChatRequest`.

    Call ``register(name, factory, params=..., description=...)`` once per backend, with
    ``params`` a :class:`~harness.Params` class (or ``schema=`` a JSON Schema). ``factory``
    builds a :class:`~harness.Backend` from the manifest entry's parameters.
    """


@hookspec
def register_tasks(register: Register) -> None:
    """Register tasks: things that yield :class:`~harness.Sample` records and score them.

    ``factory`` builds a :class:`~harness.Task` from the manifest entry's parameters.
    """


@hookspec
def register_metrics(register: Register) -> None:
    """Register metrics: functions of a sample and its outcome that return named numbers.

    ``factory`` builds a :class:`~harness.Metric` from the manifest entry's parameters.
    """


@hookspec
def register_decoders(register: Register) -> None:
    """Register output decoders: raw model text or native tool calls to a list of calls.

    ``factory`` builds a :class:`~harness.Decoder`; tasks pick one by name (a
    task parameter such as ``decoder: python_calls``). Decoders parse, never evaluate.
    """


@hookspec
def register_environments(register: Register) -> None:
    """Register agent environments: worlds an agent acts in over many steps.

    ``factory`` builds an :class:`~harness.Environment` (its episodes, tools, ``reset`` and
    ``step``); an ``agent`` task names one under ``environment:``.
    """


@hookspec
def register_agents(register: Register) -> None:
    """Register agent strategies: how a backend is driven through an episode (act, react...).

    ``factory`` builds an :class:`~harness.Agent`; an ``agent`` task names one under ``agent:``.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add sub-commands to the ``harness`` command line (``cli.command()``, ``cli.add_command``)."""


# --- run lifecycle ------------------------------------------------------------------------
#
# Each lifecycle hook receives a typed ``event``; the older arguments (``run``, ``record``,
# ``results``, ``status``) stay for plugins written against them. An implementation names only
# the arguments it wants. One that raises is logged and reported; the run goes on.


@hookspec
def on_run_start(run: RunInfo, event: RunStarted) -> None:
    """Called once before the first sample of a run (or of a resumed run) is played.

    ``event`` (:class:`~harness.RunStarted`) says where the run directory is, what the resolved
    manifest is, how many samples were already finished and how many are left. Loggers and
    experiment trackers start here.
    """


@hookspec
def on_sample_finished(run: RunInfo, record: dict[str, Any], event: SampleFinished) -> None:
    """Called after each sample's record has been appended to ``samples.jsonl``.

    ``event.record`` is the :class:`~harness.SampleRecord` that was written (``record`` is the
    same as a dictionary). Keep the hook cheap: it runs on the writer's thread, once per sample.
    """


@hookspec
def on_run_end(run: RunInfo, results: dict[str, Any] | None, status: str, event: RunEnded) -> None:
    """Called once when a run stops, whatever the reason.

    ``event.status`` is ``"finished"``, ``"failed"`` or ``"interrupted"``; ``event.results`` is
    the content of ``results.json`` when the run finished, else ``None``; ``event.error`` says
    why a failed run stopped.
    """


# --- the report ---------------------------------------------------------------------------


@hookspec
def report_sections(run: RunView) -> list[ReportSection] | None:
    """Add sections to a run's ``report.html`` (the core renders only what every run has).

    ``run`` (:class:`~harness.RunView`) gives the manifest, the aggregates as a DataFrame and
    the sample records. Return :class:`~harness.ReportSection` objects (an HTML fragment the
    plugin escaped itself), or ``None`` when the run has nothing of yours. A hook that raises
    loses its section, not the report.
    """
