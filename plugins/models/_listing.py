"""``harness models list``: the registry's model cards and the store's variants as one table
(or JSON), one row per model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness_plugins.shared.models import card_names
from harness_plugins.shared.models import card_path
from harness_plugins.shared.models import load_card
from harness_plugins.shared.store import list_variants

from harness import InputError

from ._gguf import read_gguf

COLUMNS = ("name", "format", "quantization", "bits", "size_mb", "base", "requantized", "path")
HEADERS = ("NAME", "FORMAT", "QUANT", "BITS", "SIZE MB", "BASE", "REQUANT", "PATH")


def rows(store: Path | None) -> list[dict[str, Any]]:
    """Registry cards first (by name), then store variants (by name)."""
    cards = [_card_row(card) for name in card_names() if (card := load_card(name))]
    return cards + [_variant_row(card) for card in list_variants(store)]


def _card_row(card: dict[str, Any]) -> dict[str, Any]:
    """A registry card: its file is inside an installed package, or not installed yet."""
    try:
        path: str = str(card_path(card))
    except InputError:
        path = f"not installed: {card.get('install', '?')}"
    upstream = str(card.get("upstream", ""))
    return {
        "kind": "card",
        "name": card["name"],
        "format": card.get("format"),
        "quantization": card.get("quantization"),
        "bits": card.get("bits") or _gguf_bits(path, card),
        "size_bytes": card.get("size_bytes"),
        "size_mb": _mb(card.get("size_bytes")),
        "base": card.get("base") or upstream.removeprefix("https://huggingface.co/") or None,
        "requantized": card.get("requantized"),
        "path": path,
    }


def _gguf_bits(path: str, card: dict[str, Any]) -> float | None:
    """Bits per weight read from the GGUF header (0.1 s), when the file is installed."""
    if card.get("format") != "gguf" or not Path(path).is_file():
        return None
    try:
        return read_gguf(Path(path)).bits_per_weight()
    except InputError:
        return None


def _variant_row(card: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "variant",
        "name": card.get("name") or Path(card["path"]).name,
        "format": card["format"],
        "quantization": card.get("quantization"),
        "bits": card.get("bits"),
        "size_bytes": card.get("size_bytes"),
        "size_mb": _mb(card.get("size_bytes")),
        "base": card.get("base"),
        "requantized": card.get("requantized"),
        "path": str(Path(card["path"]) / card["file"]),
    }


def _mb(size: Any) -> float | None:
    return round(size / 1e6, 1) if isinstance(size, int | float) else None


def table(found: list[dict[str, Any]]) -> str:
    """Aligned columns, numbers right-aligned; ``-`` where a model does not say."""
    cells = [HEADERS] + [tuple(_cell(col, row.get(col)) for col in COLUMNS) for row in found]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS) - 1)]
    lines = []
    for row in cells:
        padded = [
            c.rjust(w) if h in ("BITS", "SIZE MB") else c.ljust(w)
            for c, w, h in zip(row, widths, HEADERS, strict=False)
        ]
        lines.append("  ".join([*padded, row[-1]]).rstrip())
    return "\n".join(lines)


def _cell(column: str, value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if column == "size_mb":
        return f"{value:.1f}"
    if column == "bits":
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return str(value)
