"""Backend ``openai``: any OpenAI-compatible chat-completions server (OpenAI, vLLM, llama.cpp's
server, Ollama, LM Studio, ``harness serve``), and the ``harness cache`` command.

Hooks only (cheap to import): the backend lives in :mod:`harness_plugins.openai._backend`
and imports ``aiohttp`` when a manifest uses it. ``api_key`` is normally ``${SOME_ENV}``; its value
is sent as ``Authorization: Bearer ...`` and never written to a run directory, a log or an
error message.

Tool modes: ``prompt`` sends the messages only; ``native`` (and requests with tools but no
mode) sends ``tools`` and ``tool_choice``; ``constrained`` sends the tools with
``tool_choice: "required"`` unless the request names a function. A generic OpenAI server cannot
be forced further than that (no grammar), so ``constrained`` there means "a call is required",
not "the call is well-formed".
"""

from __future__ import annotations

import json
from typing import Any
from typing import Literal

from harness import Operational
from harness import Params
from harness import Register
from harness import hookimpl
from harness import param


@hookimpl
def register_backends(register: Register) -> None:
    register("openai", "harness_plugins.openai._backend:OpenAIBackend", params=OpenAIParams)


class OpenAIParams(Params):
    """An OpenAI-compatible chat-completions server over HTTP, with retries, a response cache and
    streaming."""

    base_url: str = param(
        "https://api.openai.com/v1",
        description="API root, e.g. http://127.0.0.1:8000/v1 (/chat/completions is "
        "appended unless the URL already ends with it).",
    )
    model: str = param(description="Model name sent with every request.")
    api_key: str | None = param(
        None,
        secret=True,
        description="Bearer token; write ${SOME_ENV} so it never sits in the manifest. "
        "Omit for a local server without authentication.",
    )
    max_concurrency: Operational[int] = param(
        8,
        minimum=1,
        description="Most requests in flight at once (the runner uses at most this many threads).",
    )
    timeout_s: Operational[float] = param(
        60, exclusive_minimum=0, description="Limit for one HTTP attempt, connection to last byte."
    )
    max_retries: Operational[int] = param(
        5,
        minimum=0,
        description="Retries after a 429, 408, 409, 5xx, timeout, dropped connection "
        "or malformed body; other 4xx are never retried.",
    )
    backoff_base_s: Operational[float] = param(
        0.5,
        minimum=0,
        description="Exponential backoff base: attempt k waits a random time in "
        "[0, base * 2**k] (full jitter).",
    )
    backoff_max_s: Operational[float] = param(20, minimum=0, description="Cap on one backoff wait.")
    retry_after_max_s: Operational[float] = param(
        60, minimum=0, description="Cap on a server's Retry-After (seconds or HTTP date)."
    )
    max_response_mb: Operational[float] = param(
        64,
        exclusive_minimum=0,
        description="A response body larger than this (MiB) is refused and retried: bodies "
        "are read incrementally, so a broken server cannot exhaust memory.",
    )
    logprobs: bool = param(
        False,
        description="The server returns prompt log-probabilities on /completions (echo with "
        "logprobs and max_tokens 0, as vLLM does): the backend then scores continuations "
        "(lm-eval's loglikelihood requests).",
    )
    stream: Operational[bool] = param(
        False,
        description="Ask for server-sent events to measure time to first token "
        "(ttft_s); a server that answers with plain JSON is read as such.",
    )
    cache: Operational[Literal["auto", "on", "off"] | bool] = param(
        "auto",
        description="Response cache: auto = on for temperature 0 (or unset) or a "
        "seeded request, off for unseeded sampling (YAML's unquoted on/off, read as true/false, "
        "mean the same).",
    )
    cache_path: Operational[str | None] = param(
        None,
        format="path",
        description="SQLite file of the cache (default $HARNESS_CACHE_DIR/"
        "responses.sqlite, else ~/.cache/harness/responses.sqlite).",
    )
    max_tokens: int | None = param(
        None, minimum=1, description="Most tokens per answer, unless the request says."
    )
    temperature: float = param(
        0, minimum=0, description="Sampling temperature unless the request says; 0 is greedy."
    )
    top_p: float | None = param(None, description="Nucleus sampling mass.")
    seed: int | None = param(None, description="Sampling seed unless the request says.")
    stop: list[str] | None = param(
        None, description="Stop sequences unless the request gives its own."
    )
    extra_body: dict[str, Any] | None = param(
        None,
        description="More fields merged into every request body (server-specific, "
        "e.g. presence_penalty).",
    )

    def capabilities(self) -> frozenset[str]:
        """Native tools always; streaming and log-likelihoods when asked for."""
        return frozenset(
            {"native_tools"}
            | ({"streaming"} if self.stream else set())
            | ({"loglikelihood"} if self.logprobs else set())
        )


@hookimpl
def register_commands(cli: Any) -> None:
    import click

    @cli.group()
    def cache() -> None:
        """The response cache: where it is, how big, and emptying it."""

    path_option = click.option(
        "--path",
        "path",
        type=click.Path(dir_okay=False),
        help="A cache file other than the default (a backend's cache_path).",
    )

    @cache.command("info")
    @path_option
    @click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
    def info(path: str | None, as_json: bool) -> None:
        """Print the cache's location, number of entries and size on disk."""
        from harness_plugins.shared.cache import cache_stats

        stats = cache_stats(path)
        if as_json:
            click.echo(json.dumps(stats))
            return
        click.echo(f"location: {stats['path']}")
        click.echo(f"entries: {stats['entries']}")
        click.echo(f"size: {_human(stats['size_bytes'])} ({stats['size_bytes']} bytes)")

    @cache.command("clear")
    @path_option
    def clear(path: str | None) -> None:
        """Delete every cached response (the next run asks the servers again)."""
        from harness_plugins.shared.cache import clear_cache
        from harness_plugins.shared.cache import default_cache_path

        removed = clear_cache(path)
        click.echo(
            f"cleared {removed} entr{'y' if removed == 1 else 'ies'} from "
            f"{path or default_cache_path()}"
        )


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
