"""The ``harness`` command line: thin click shims over the library.

Exit status: 0 done; 1 stopped by a failure (what finished is kept); 2 invalid manifest or
usage (nothing started); 130 interrupted (rerun the same command to resume). User errors are
one line each, never a traceback (``--debug`` shows it).
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import click

from harness._errors import HarnessError
from harness._errors import ManifestError
from harness._plugins import get_host
from harness._plugins import iter_plugin_rows

EXAMPLES = """
\b
Examples:
  harness run registry/manifests/quickstart.yaml
  harness run my.yaml --out runs/try --limit 20 --set run.seed=1
  harness validate my.yaml
  harness compare runs/a runs/b
"""


class HarnessGroup(click.Group):
    """Turns :class:`HarnessError` into a one-line message and the contract's exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HarnessError as exc:
            if (ctx.obj or {}).get("debug"):
                raise
            _print_error(exc)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("harness: interrupted; rerun the same command to resume.", err=True)
            ctx.exit(130)
        except OSError as exc:  # a file or folder we cannot read or write: the user can fix it
            if (ctx.obj or {}).get("debug"):
                raise
            where = f"{exc.filename}: " if exc.filename else ""
            click.echo(f"harness: error: {where}{exc.strerror or exc}", err=True)
            ctx.exit(1)


def _print_error(exc: HarnessError) -> None:
    if isinstance(exc, ManifestError):
        for line in exc.problems:
            click.echo(line, err=True)
        return
    click.echo(f"harness: error: {exc}", err=True)


@click.group(cls=HarnessGroup, epilog=EXAMPLES)
@click.version_option(package_name="harness")
@click.option("--debug", is_flag=True, help="Show Python tracebacks for errors.")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug logs).")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: int) -> None:
    """Evaluate language models that call functions, act as agents and run on small devices.

    A run manifest (YAML or JSON) names backends, tasks and metrics, each provided by a
    plugin; see `harness plugins` for what is installed and `harness schema` for every field.
    """
    ctx.obj = {"debug": debug}
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    logging.basicConfig(level=level, format="harness: %(levelname)s: %(message)s")


@cli.command()
@click.argument("manifest", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Run directory (default: run.out, else runs/<name>). Same --out resumes.",
)
@click.option("--limit", type=click.IntRange(min=1), help="Play at most N samples per task.")
@click.option(
    "--repeats",
    type=click.IntRange(min=1),
    help="Play each sample K times (run.repeats): adds pass@k, pass^k and consistency.",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a manifest field, e.g. --set run.seed=3 --set tasks[0].limit=5.",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    help="Where samples play (run.executor): here, or on Ray actors (docs/distributed.md).",
)
@click.option(
    "--ray-address",
    metavar="ADDR",
    help="With --executor ray: the cluster (run.ray.address): auto, HOST:PORT or ray://HOST:PORT.",
)
@click.option("--no-progress", is_flag=True, help="No progress bar or progress lines.")
@click.option(
    "--retry-errors",
    is_flag=True,
    help="When resuming, play again the samples that ended in an error (outage, wrong key).",
)
@click.option(
    "--adopt",
    is_flag=True,
    help="Continue a run directory whose manifest.json was lost, taking its records as this "
    "manifest's (they cannot be checked; manifest.json records the adoption).",
)
def run(
    manifest: Path,
    out: Path | None,
    limit: int | None,
    repeats: int | None,
    sets: tuple[str, ...],
    executor: str | None,
    ray_address: str | None,
    no_progress: bool,
    retry_errors: bool,
    adopt: bool,
) -> None:
    """Run MANIFEST; write the run directory as results arrive.

    Running it again with the same --out resumes: finished samples are never recomputed
    (samples that ended in an error are kept as they are unless --retry-errors is given).
    """
    from harness._manifest import load_manifest
    from harness._run import run_manifest

    host = get_host()
    if repeats is not None:  # as the last --set, so it wins over the manifest and --set
        sets = (*sets, f"run.repeats={repeats}")
    sets = (*sets, *_executor_sets(executor, ray_address))
    loaded = load_manifest(manifest, host, sets, limit)
    if ray_address is not None and loaded.run.executor != "ray":
        raise click.UsageError("--ray-address needs the ray executor: add --executor ray")
    signal.signal(signal.SIGTERM, _raise_interrupt)
    result = run_manifest(
        loaded, host, out, progress=not no_progress, retry_errors=retry_errors, adopt=adopt
    )
    _print_scores(result.rows)
    click.echo(f"\n{result.played} sample(s) played, {result.skipped} already done.")
    click.echo(f"report: {result.run_dir / 'report.html'}")
    _check_all_failed(result)
    _check_metric_errors(result)


def _executor_sets(executor: str | None, ray_address: str | None) -> tuple[str, ...]:
    """``--executor`` and ``--ray-address`` as the last ``--set``s, so they win; the address
    as a JSON string (YAML would read ``10:30`` as a number)."""
    sets: tuple[str, ...] = () if executor is None else (f"run.executor={executor}",)
    if ray_address is not None:
        sets += (f"run.ray.address={json.dumps(ray_address)}",)
    return sets


def _check_all_failed(result: Any) -> None:
    """A run in which no sample could be scored (a wrong key, a server down) is a failure,
    not a score of 0: say why and exit 1; the records are kept for --retry-errors."""
    cells = [
        c for task in (result.results or {}).get("results", {}).values() for c in task.values()
    ]
    if not cells or any(c["n_errors"] < c["n_samples"] for c in cells):
        return
    from harness._store import SAMPLES
    from harness._store import iter_records

    first = next((r["error"] for r in iter_records(result.run_dir / SAMPLES) if r["error"]), "")
    raise HarnessError(
        f"every sample ended in an error (first: {first}); fix the cause (a key, a server, a "
        "file), then rerun the same command with --retry-errors"
    )


def _check_metric_errors(result: Any) -> None:
    """A metric that raised leaves its mean over fewer samples than played: say so and exit 1."""
    if not result.metric_errors:
        return
    counts = ", ".join(f"{m!r} on {n} sample(s)" for m, n in sorted(result.metric_errors.items()))
    raise HarnessError(
        f"metrics failed: {counts} (first: {result.first_metric_error}); the other scores are "
        "kept; fix the metric, then rerun with --retry-errors to score those samples again"
    )


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _print_scores(rows: list[dict[str, Any]]) -> None:
    from harness._report import distribution_table
    from harness._report import score_table
    from harness._results import error_count

    table = score_table(rows)
    click.echo(table.to_text() if not table.empty else "no scores")
    spread = distribution_table(rows)
    if not spread.empty:
        click.echo("\nmedian, p10 and p90 of the other measurements, whole task:")
        click.echo(spread.to_text("{:.4g}"))
    errors = error_count(rows)
    if errors:
        click.echo(f"warning: {errors} sample(s) could not be scored; see the report.", err=True)


@cli.command()
@click.argument("manifest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="As for `run`.")
def validate(manifest: Path, sets: tuple[str, ...]) -> None:
    """Check MANIFEST against the core schema and that of every plugin it names."""
    from harness._manifest import load_manifest

    loaded = load_manifest(manifest, get_host(), sets)
    click.echo(
        f"{manifest}: valid ({len(loaded.backends)} backend(s), {len(loaded.tasks)} "
        f"task(s), {len(loaded.metrics)} extra metric(s))"
    )


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.option(
    "--kind",
    type=click.Choice(
        ["backend", "task", "metric", "decoder", "environment", "agent", "hooks", "broken"]
    ),
    help="Only rows of this kind: parts, plugins' other hooks, or plugins that failed to load.",
)
def plugins(as_json: bool, kind: str | None) -> None:
    """List every discovered plugin and what it contributes."""
    rows = [r for r in iter_plugin_rows(get_host()) if kind is None or r["kind"] == kind]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(_left_aligned(rows, ["kind", "name", "package", "version", "description"]))


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _left_aligned(rows: list[dict[str, Any]], columns: list[str], width: int = 72) -> str:
    """A plain left-aligned table; long cells are cut to ``width`` characters."""
    if not rows:
        return "no plugins found"
    cells = [[_cut(str(r.get(c) or ""), width) for c in columns] for r in rows]
    sizes = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = [columns, ["-" * s for s in sizes], *cells]
    return "\n".join(
        "  ".join(v.ljust(s) for v, s in zip(line, sizes, strict=True)).rstrip() for line in lines
    )


@cli.command()
@click.option("--markdown", is_flag=True, help="Print the manifest reference as Markdown.")
def schema(markdown: bool) -> None:
    """Print the manifest JSON Schema (the core plus every installed plugin)."""
    from harness._docgen import schema_markdown
    from harness._schema import composed_schema

    composed = composed_schema(get_host().catalog)
    click.echo(schema_markdown(composed) if markdown else json.dumps(composed, indent=2))


@cli.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
def report(run_dir: Path) -> None:
    """Render RUN_DIR's report.html again and print its score table."""
    from harness._report import write_report
    from harness._results import RunView

    _require_run_dir(run_dir)
    view = RunView.open(run_dir)
    path = write_report(view)
    _print_scores(view.rows)
    click.echo(f"report: {path}")


@cli.command()
@click.argument(
    "run_dirs",
    nargs=-1,
    required=True,
    type=click.Path(file_okay=False, exists=True, path_type=Path),
)
@click.option(
    "--metric", "metrics", multiple=True, metavar="NAME", help="Only this metric (repeatable)."
)
@click.option("--by-subtask", is_flag=True, help="Also a row per subtask of each task.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap.")
@click.option(
    "--bootstrap",
    "resamples",
    type=click.IntRange(min=100),
    default=10_000,
    show_default=True,
    help="Bootstrap resamples per row.",
)
@click.option(
    "--csv",
    "csv_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write every column as CSV.",
)
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a self-contained page: the table and a forest plot.",
)
@click.option("--means", is_flag=True, help="Print the means side by side instead (as before).")
def compare(
    run_dirs: tuple[Path, ...],
    metrics: tuple[str, ...],
    by_subtask: bool,
    seed: int,
    resamples: int,
    csv_file: Path | None,
    html_file: Path | None,
    means: bool,
) -> None:
    """Compare runs sample by sample: is the difference real?

    A column is a run and backend (RUN/BACKEND); the first is the baseline A, and every other
    column B is compared with it on the samples both scored: B - A with a bootstrap 95%
    interval, and for 0/1 metrics the samples that flipped each way with McNemar's exact test.
    One run with two backends compares them. See docs/compare.md.
    """
    from harness import _compare

    for run_dir in run_dirs:
        _require_run_dir(run_dir)
    if means:
        click.echo(_compare.means_text(run_dirs, metrics, bool(csv_file or html_file)))
        return
    columns = _compare.checked_columns(run_dirs, metrics)
    settings = _compare.Settings(resamples, seed, metrics, by_subtask)
    rows = _compare.compare_rows(columns, settings)
    click.echo(_compare.render_text(rows, by_subtask))
    for path, write in ((csv_file, _compare.write_csv), (html_file, _compare.write_html)):
        if path:
            write(rows, path, by_subtask)
            click.echo(f"wrote {path}")


def _require_run_dir(run_dir: Path) -> None:
    if not (run_dir / "samples.jsonl").exists():
        raise HarnessError(
            f"{run_dir}: not a run directory (no samples.jsonl); "
            "give the --out folder of a `harness run`"
        )


def main() -> None:
    """Console entry point: adds plugin commands, then runs the CLI."""
    try:
        get_host().add_commands(cli)
    except HarnessError as exc:
        _print_error(exc)
        sys.exit(exc.exit_code)
    cli(prog_name="harness")
