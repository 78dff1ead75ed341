"""``harness models``: the models a run can name. ``list`` shows the registry's model cards
and the local store's variants; ``quantize`` makes GGUF variants with llama.cpp's quantizer;
``export`` makes ONNX (and ORT-format) variants. See ``docs/models.md``.

Hooks and options only (cheap to import: every ``harness`` command loads this module);
llama-cpp-python, gguf, torch and onnxruntime are imported when a command needs them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from harness import InputError
from harness import hookimpl

from ._quantize import EMBEDDING_TYPES
from ._quantize import LADDER
from ._quantize import TYPES

ONNX_QUANTS = ("fp32", "int8", "int4", "int8-dynamic")
DEFAULT_ONNX_QUANTS = ("fp32", "int8", "int4")

store_option = click.option(
    "--store",
    type=click.Path(file_okay=False, path_type=Path),
    help="The model store (default: $HARNESS_MODEL_STORE, else ~/.cache/harness/models).",
)
prefix_option = click.option(
    "--name-prefix",
    "prefix",
    metavar="P",
    help="Start of the variant names (default: the source's name without its quantization).",
)
force_option = click.option(
    "--force", is_flag=True, help="Make variants again even when the store has them."
)


@hookimpl
def register_commands(cli: click.Group) -> None:
    cli.add_command(models)


def _cpus() -> int:
    """The cores this process may use (a container or taskset may allow fewer than exist)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@click.group()
def models() -> None:
    """Model cards, the local model store, and making variants (quantize, export).

    A variant's name works wherever a manifest takes a model: `model: NAME`.
    """


@models.command("list")
@store_option
@click.option("--json", "as_json", is_flag=True, help="One JSON document for scripts.")
def list_models(store: Path | None, as_json: bool) -> None:
    """Registry cards and store variants: name, format, quantization, bits, size, base."""
    from harness_plugins.shared.store import store_dir

    from ._listing import rows
    from ._listing import table

    found = rows(store)
    if as_json:
        click.echo(json.dumps({"store": str(store_dir(store)), "models": found}, indent=2))
        return
    click.echo(table(found))
    variants = sum(row["kind"] == "variant" for row in found)
    hint = "" if variants else "; make some with `harness models quantize` or `export`"
    click.echo(f"\nstore: {store_dir(store)} ({variants} variant(s){hint})")


@models.command()
@click.argument("source", required=False)
@click.option(
    "--type",
    "types",
    multiple=True,
    type=click.Choice(TYPES, case_sensitive=False),
    metavar="TYPE",
    help=f"A llama.cpp type to make, repeatable: {', '.join(TYPES)} (default: {' '.join(LADDER)}).",
)
@click.option(
    "--from-f16/--requantize",
    "from_f16",
    default=True,
    show_default=True,
    help="From a quantized SOURCE: dequantize to an F16 variant first and quantize that, or "
    "quantize SOURCE itself (llama.cpp's allow_requantize).",
)
@click.option(
    "--embedding-type",
    type=click.Choice(EMBEDDING_TYPES, case_sensitive=False),
    metavar="TYPE",
    help=f"Store token_embd in this type: {', '.join(EMBEDDING_TYPES)} (default: llama.cpp's "
    "choice for the quantization type).",
)
@click.option("--threads", type=click.IntRange(min=1), help="Quantizer threads (default: all).")
@store_option
@prefix_option
@force_option
def quantize(
    source: str | None,
    types: tuple[str, ...],
    from_f16: bool,
    embedding_type: str | None,
    threads: int | None,
    store: Path | None,
    prefix: str | None,
    force: bool,
) -> None:
    """GGUF variants of SOURCE (default: smollm2-135m-instruct) by llama.cpp's quantizer.

    SOURCE is a GGUF file, a model card or a store variant. Needs llama-cpp-python
    (`bash scripts/install.sh test`) and the gguf package.
    """
    from harness_plugins.shared.store import store_dir

    from ._quantize import Plan
    from ._quantize import run
    from ._sources import resolve_source
    from ._variants import default_echo

    resolved = resolve_source(source, store)
    if resolved.format != "gguf":
        raise InputError(
            f"{resolved.path}: quantize needs a GGUF file; `harness models export` takes a "
            "Hugging Face folder"
        )
    resolved.gguf  # noqa: B018 -- reads and checks the header before any work
    plan = Plan(
        source=resolved,
        types=tuple(dict.fromkeys(types or LADDER)),
        requantize=not from_f16,
        store=store_dir(store),
        prefix=prefix or resolved.prefix,
        threads=threads or _cpus(),
        embedding_type=embedding_type,
        force=force,
    )
    made = run(plan, default_echo)
    click.echo(f"{len(made)} variant(s) in {plan.store}; see `harness models list`")


@models.command()
@click.argument("source", required=False)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["onnx"]),
    default="onnx",
    show_default=True,
    help="Export format.",
)
@click.option(
    "--quant",
    "quants",
    multiple=True,
    type=click.Choice(ONNX_QUANTS),
    help="A variant to make; repeat it (default: fp32 int8 int4). int8 and int4 are "
    "weight-only MatMulNBits; int8-dynamic is onnxruntime's dynamic quantization.",
)
@click.option("--ort", is_flag=True, help="Also write each variant in ORT format (.ort).")
@click.option(
    "--ort-head-int4",
    is_flag=True,
    help="With --ort: store the tied output head as a 4-bit MatMulNBits weight in the int8 and "
    "int4 .ort files instead of a second fp32 copy of the embedding.",
)
@store_option
@prefix_option
@force_option
def export(
    source: str | None,
    fmt: str,
    quants: tuple[str, ...],
    ort: bool,
    ort_head_int4: bool,
    store: Path | None,
    prefix: str | None,
    force: bool,
) -> None:
    """ONNX variants of SOURCE (default: smollm2-135m-instruct) for ONNX Runtime.

    SOURCE is a GGUF file, card or variant (dequantized to fp32 with transformers), or a
    Hugging Face model folder. Needs the `export` extra: pip install -e ".[export]".
    """
    from ._deps import need_export_extra

    need_export_extra()
    from harness_plugins.shared.store import store_dir

    from ._export import ExportPlan
    from ._export import run as run_export
    from ._sources import resolve_source
    from ._variants import default_echo

    resolved = resolve_source(source, store)
    if resolved.format == "gguf":
        resolved.gguf  # noqa: B018 -- reads and checks the header before any work
    plan = ExportPlan(
        source=resolved,
        quants=tuple(dict.fromkeys(quants or DEFAULT_ONNX_QUANTS)),
        ort=ort,
        ort_head_int4=ort_head_int4,
        store=store_dir(store),
        prefix=prefix or resolved.prefix,
        force=force,
    )
    made = run_export(plan, default_echo)
    click.echo(f"{len(made)} variant(s) in {plan.store}; see `harness models list`")
