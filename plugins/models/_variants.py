"""Writing store variants: a staging folder published by one rename, the card facts every
variant shares (size, sha256, tool versions, time) and the rule for a name already taken.

A variant is built in ``<store>/.tmp-<name>-<pid>`` and renamed into place only when its
model file and card are complete, so an interrupted or failed step never leaves a folder
that ``models list`` or a manifest would take for a model.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import click
from harness_plugins.shared.models import file_sha256
from harness_plugins.shared.store import CARD
from harness_plugins.shared.store import find_variant
from harness_plugins.shared.store import read_card
from harness_plugins.shared.store import valid_name
from harness_plugins.shared.store import write_card

from harness import InputError

Echo = Callable[[str], None]


def versions(*dists: str) -> dict[str, str]:
    """Installed versions of the named distributions (``harness`` is always included)."""
    found = {}
    for dist in ("harness", *dists):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            found[dist] = "not installed"
    return found


def now() -> str:
    """The time a card is written, in UTC to the second (ISO 8601)."""
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def file_facts(path: Path) -> dict[str, Any]:
    """``size_bytes`` and ``sha256`` of a model file, as a card records them."""
    return {"size_bytes": path.stat().st_size, "sha256": file_sha256(path)}


def check_name(name: str) -> str:
    """A variant name must be one path segment; say which characters are allowed."""
    if not valid_name(name):
        raise InputError(
            f"variant name {name!r}: use letters, digits, '.', '_', '-' and '@' only (and no "
            "leading '.'); set --name-prefix"
        )
    return name


def safe_name(text: str) -> str:
    """``text`` with every character a variant name cannot hold replaced by ``-``."""
    cleaned = "".join(c if valid_name(c) or c in "._" else "-" for c in text)
    return cleaned.strip("-.") or "model"


def up_to_date(folder: Path, source_sha256: str, method: str, force: bool) -> bool:
    """True when ``folder`` already holds this variant (same source file and method): the
    step is skipped. A variant of that name made otherwise is an error unless ``force``."""
    if force or not (folder / CARD).is_file():
        return False
    card = read_card(folder)
    if card.get("source", {}).get("sha256") == source_sha256 and card.get("method") == method:
        return True
    raise InputError(
        f"{folder}: a variant of that name exists, made from another source or another way "
        f"({card.get('method')}); replace it with --force or pick another --name-prefix"
    )


def existing(name: str, store: Path) -> dict[str, Any]:
    """The card (with ``path``, the folder) of a variant ``up_to_date`` found in the store."""
    found = find_variant(name, store)
    if found is None:
        raise InputError(f"variant {name!r} is no longer in {store}; run the command again")
    return found[1] | {"path": str(found[0].parent)}


@contextmanager
def staging(store: Path, name: str) -> Iterator[Path]:
    """A fresh hidden folder in the store for variant ``name``; removed unless published."""
    store.mkdir(parents=True, exist_ok=True)
    folder = store / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def publish(folder: Path, card: dict[str, Any], target: Path) -> dict[str, Any]:
    """Write the card into the staging ``folder`` and move it to ``target`` (replacing an
    older variant of the same name, which ``up_to_date`` allowed)."""
    write_card(folder, card)
    if target.exists():
        old = target.with_name(f".old-{target.name}-{os.getpid()}")
        target.rename(old)
        shutil.rmtree(old, ignore_errors=True)
    folder.rename(target)
    return card | {"path": str(target)}


@contextmanager
def step(echo: Echo, label: str) -> Iterator[dict[str, Any]]:
    """Time one heavy step and print ``label: N.N s`` when it ends; the dict it yields takes
    extra words for that line (``info["detail"]``) and receives ``seconds``."""
    info: dict[str, Any] = {}
    started = time.perf_counter()
    yield info
    info["seconds"] = round(time.perf_counter() - started, 1)
    detail = f" ({info['detail']})" if info.get("detail") else ""
    echo(f"  {label}: {info['seconds']:.1f} s{detail}")


def default_echo(line: str) -> None:
    """Progress lines go to stdout, flushed, so a pipe shows each step as it ends."""
    click.echo(line)
