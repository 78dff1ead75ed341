"""The local model store: variants a user made (``harness models export`` / ``quantize``),
each in its own folder with a ``card.json`` saying where it came from.

Layout (``$HARNESS_MODEL_STORE``, else ``$HARNESS_CACHE_DIR/models``, else
``$XDG_CACHE_HOME/harness/models``, else ``~/.cache/harness/models``)::

    <store>/<variant name>/card.json      the card (below)
    <store>/<variant name>/<file>         the model: a .gguf file, or model.onnx / model.ort
                                          with tokenizer.json, tokenizer_config.json, config.json

A card is plain JSON: ``name``, ``format`` (``gguf``, ``onnx`` or ``ort``), ``file`` (relative
to the folder), ``base`` (the model it derives from), ``source`` (``{"path", "sha256",
"format", "quantization"}`` of what it was made from), ``method`` (the tool and settings, in
words), ``quantization`` (``Q4_0``, ``int4``, ``fp32`` ...), ``bits`` (bits per weight of the
quantized tensors), ``requantized`` (true when the source was itself quantized: its errors
are in this variant too), ``size_bytes`` and ``sha256`` of the model file, ``tools``
(versions) and ``created_at``. A manifest names a variant by its name, as it names a
registry card.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from harness import InputError

CARD = "card.json"
FORMATS = ("gguf", "onnx", "ort")


def store_dir(store: str | Path | None = None) -> Path:
    """The store folder: ``store`` if given, else the environment's, else the default."""
    if store is not None:
        return Path(store).expanduser()
    if os.environ.get("HARNESS_MODEL_STORE"):
        return Path(os.environ["HARNESS_MODEL_STORE"]).expanduser()
    if os.environ.get("HARNESS_CACHE_DIR"):
        return Path(os.environ["HARNESS_CACHE_DIR"]).expanduser() / "models"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "harness" / "models"


def valid_name(name: str) -> bool:
    """A variant name is one path segment of letters, digits, ``.``, ``_``, ``-`` and ``@``."""
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@")
    return bool(name) and not name.startswith(".") and set(name) <= allowed


def read_card(folder: Path) -> dict[str, Any]:
    """A variant's card; a missing or broken one is an :class:`InputError` naming the file."""
    path = folder / CARD
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no model card; this folder is not a store variant") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable model card ({exc}); delete the folder") from None
    if not isinstance(card, dict) or card.get("format") not in FORMATS or "file" not in card:
        raise InputError(f"{path}: a model card needs 'format' ({', '.join(FORMATS)}) and 'file'")
    return card


def write_card(folder: Path, card: dict[str, Any]) -> Path:
    """Write ``card.json`` into ``folder`` (atomically: a card is either whole or absent)."""
    path = folder / CARD
    tmp = folder / f".{CARD}.tmp"
    tmp.write_text(json.dumps(card, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def find_variant(name: str, store: str | Path | None = None) -> tuple[Path, dict[str, Any]] | None:
    """(model path, card) of the store variant called ``name``, or None when there is none."""
    if not valid_name(name):
        return None
    folder = store_dir(store) / name
    if not (folder / CARD).is_file():
        return None
    card = read_card(folder)
    return folder / card["file"], card


def list_variants(store: str | Path | None = None) -> list[dict[str, Any]]:
    """Every readable card in the store, by name (unreadable folders are skipped)."""
    root = store_dir(store)
    if not root.is_dir():
        return []
    cards = []
    for folder in sorted(p for p in root.iterdir() if (p / CARD).is_file()):
        try:
            cards.append(read_card(folder) | {"path": str(folder)})
        except InputError:
            continue
    return cards
