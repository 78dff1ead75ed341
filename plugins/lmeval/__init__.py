"""lm-eval interoperability, both ways.

- Task ``lmeval`` (with its metric ``lm_eval``): lm-eval tasks, groups and tags, written as
  lm-eval YAML, run through any backend inside a manifest, by lm-eval's own machinery
  (prompts, filters, metrics, aggregation, standard errors); per-sample records and resume as
  for every task. :mod:`harness_plugins.lmeval._task`.
- ``HarnessLM``: any backend a manifest can name, as an lm-eval ``LM`` (registered in
  lm-eval's model registry as ``harness``), for ``lm_eval.simple_evaluate`` and lm-eval's
  command line (``harness lm-eval``). :mod:`harness_plugins.lmeval.lm`.

``registry/lmeval/`` ships a small lm-eval YAML suite on data it ships (a generation task, a
multiple-choice task, a group), so it all runs offline. Needs the ``lm-eval`` extra
(``pip install -e .[lm-eval]``); this module (hooks and parameters) does not import lm-eval.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path
from typing import Any

import click

from harness import InputError
from harness import Params
from harness import PluginError
from harness import Register
from harness import hookimpl
from harness import param

#: The fix offered when a task needs log-likelihoods that a backend cannot give.
SCORING_BACKENDS = "llamacpp with engine: llama-cpp-python, onnx, or openai with logprobs: true"


def suite_path() -> Path:
    """The folder of the shipped lm-eval YAML suite (give it to lm-eval as ``include_path``)."""
    return Path(str(resources.files("harness_registry") / "lmeval"))


def task_manager(
    include_path: list[str | Path] | tuple[str | Path, ...] = (), include_defaults: bool = False
) -> Any:
    """lm-eval's ``TaskManager`` over your folders (not lm-eval's ~230 own unless
    ``include_defaults``), reading relative data files beside each YAML: give it to
    ``lm_eval.simple_evaluate(task_manager=...)``."""
    from ._suite import task_manager as make

    return make(include_path, include_defaults)


@hookimpl
def register_tasks(register: Register) -> None:
    register("lmeval", "harness_plugins.lmeval._task:LMEvalTask", params=LMEvalParams)


@hookimpl
def register_metrics(register: Register) -> None:
    register("lm_eval", "harness_plugins.lmeval._task:LMEvalMetric", params=LMEvalMetricParams)


class LMEvalParams(Params):
    """lm-eval tasks (YAML) through a harness backend, scored by lm-eval's own metrics."""

    tasks: list[str] = param(
        description="lm-eval task, group or tag names (or paths to task YAML files).",
        schema={"minItems": 1, "items": {"type": "string", "minLength": 1}},
    )
    include_path: list[str] = param(
        [],
        description="Folders of lm-eval YAML tasks, relative to the manifest "
        "(registry/lmeval is the shipped suite).",
    )
    include_defaults: bool = param(
        False,
        description="Also index lm-eval's own ~230 task folders (about 10 s); their data "
        "must be in the Hugging Face cache for an offline run.",
    )
    num_fewshot: int | None = param(
        None, minimum=0, description="Few-shot examples (lm-eval's --num_fewshot)."
    )
    fewshot_seed: int = param(1234, description="Seed of the few-shot sampler (lm-eval's).")
    limit: int | None = param(
        None, minimum=1, description="First N documents of each lm-eval task (lm-eval's --limit)."
    )
    gen_kwargs: dict[str, Any] | None = param(
        None,
        description="Generation settings over each generate_until task's own "
        "(lm-eval's --gen_kwargs), e.g. {max_gen_toks: 32}.",
    )
    system_instruction: str | None = param(
        None, description="Text put before every prompt (lm-eval's --system_instruction)."
    )
    bootstrap_iters: int = param(
        100000,
        minimum=0,
        description="Bootstrap iterations for standard errors of metrics that are not means "
        "(lm-eval's default; 0: no stderr for those).",
    )
    confirm_run_unsafe_code: bool = param(
        False, description="Allow lm-eval tasks marked unsafe (they execute model-written code)."
    )

    def folders(self, base_dir: Path) -> list[Path]:
        return [(base_dir / p).resolve() for p in self.include_path]

    def preflight(self, base_dir: Path) -> list[str]:
        """Every name is known to lm-eval (else lm-eval's reason: a YAML it cannot parse)."""
        try:
            from ._suite import check_name
            from ._suite import validation_index
        except ImportError as exc:
            return [f"type: the lmeval task needs lm-eval ({exc}); pip install -e .[lm-eval]"]
        missing = [str(f) for f in self.folders(base_dir) if not f.is_dir()]
        if missing:
            return [f"include_path: no folder {missing[0]}; give folders of lm-eval YAML tasks"]
        manager = validation_index(self.folders(base_dir), self.include_defaults)
        for name in self.tasks:
            try:
                check_name(manager, name, self.folders(base_dir))
            except InputError as exc:
                return [str(exc)]
        return []

    def requirements(self, base_dir: Path) -> dict[str, str]:
        """Log-likelihoods, when any task reached is multiple_choice or loglikelihood*."""
        from ._suite import NEEDS_SCORING
        from ._suite import output_types
        from ._suite import validation_index

        manager = validation_index(self.folders(base_dir), self.include_defaults)
        types = output_types(manager, self.tasks)
        scoring = sorted(name for name, kind in types.items() if kind in NEEDS_SCORING)
        if not scoring:
            return {}
        first = f"{scoring[0]} ({types[scoring[0]]})"
        more = f" and {len(scoring) - 1} more task(s)" if len(scoring) > 1 else ""
        return {"loglikelihood": f"lm-eval task {first}{more} needs; use {SCORING_BACKENDS}"}


class LMEvalMetricParams(Params):
    """An lm-eval task's own per-sample metric values (exact_match,strip; acc,none; ...)."""


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(lm_eval_command)


@click.command(
    "lm-eval",
    context_settings={"ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def lm_eval_command(args: tuple[str, ...]) -> None:
    """lm-eval's command line with harness backends (model `harness`).

    Every lm-eval option works (`harness lm-eval --help` prints lm-eval's). The model's
    arguments are a backend's manifest entry; a task's relative data files are read against
    its YAML's folder, so a suite runs from any folder:

    \b
      harness lm-eval --model harness \\
          --model_args type=llamacpp,model=smollm2-135m-instruct,engine=llama-cpp-python \\
          --tasks harness_capitals --include_path registry/lmeval
    """
    try:
        import harness_plugins.lmeval.lm  # noqa: F401 (registers the ``harness`` model)
        from lm_eval.__main__ import cli_evaluate

        from ._suite import anchor_everywhere
    except ImportError as exc:
        raise PluginError(f"lm-eval is not installed ({exc}); pip install -e .[lm-eval]") from None
    _check_include_path(args)
    anchor_everywhere()
    sys.argv = ["harness lm-eval", *args]
    cli_evaluate()


def _check_include_path(args: tuple[str, ...]) -> None:
    """A missing ``--include_path`` folder in one line (lm-eval would only say the tasks
    were not found, with a traceback)."""
    for index, arg in enumerate(args):
        value = arg.split("=", 1)[1] if arg.startswith("--include_path=") else None
        if arg == "--include_path" and index + 1 < len(args):
            value = args[index + 1]
        if value is not None and not Path(value).is_dir():
            raise InputError(
                f"--include_path: no folder {Path(value).resolve()}; give the folder of your "
                "lm-eval YAML tasks (relative to the current folder)"
            )
