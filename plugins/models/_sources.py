"""What SOURCE names: a file or folder path, a registry model card or a store variant, read
once into a :class:`Source` that knows its format, quantization, hash and a name to derive
variant names from."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from dataclasses import field
from functools import cached_property
from pathlib import Path
from typing import Any

from harness_plugins.shared.models import card_names
from harness_plugins.shared.models import card_path
from harness_plugins.shared.models import file_sha256
from harness_plugins.shared.models import load_card
from harness_plugins.shared.store import find_variant
from harness_plugins.shared.store import store_dir

from harness import InputError

from ._gguf import GGUFInfo
from ._gguf import read_gguf
from ._variants import safe_name

DEFAULT_SOURCE = "smollm2-135m-instruct"
DTYPES = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}
# A trailing quantization tag in a file or variant name: ".Q4_1", "-F16", "-onnx-int4" ...
QUANT_TAG = re.compile(
    r"[.\-_](?:onnx|ort|gguf)?[.\-_]?(?:[QqIi]+\d+(?:_[0-9A-Za-z]+)*|[Ff](?:16|32)|[Bb][Ff]16|"
    r"fp32|fp16|int8|int4|int8-dynamic)(?:-head4|-emb\w+|-requant)*$"
)


@dataclass(frozen=True)
class Source:
    """A model to quantize or export from: ``path`` is a GGUF file or an HF folder."""

    spec: str
    path: Path
    format: str  # gguf | hf
    name: str | None = None  # the card's or variant's name
    card: dict[str, Any] = field(default_factory=dict)
    kind: str = "path"  # path | card | variant

    @cached_property
    def gguf(self) -> GGUFInfo:
        """The GGUF header (checked: a truncated file is an error before any work)."""
        return read_gguf(self.path)

    @cached_property
    def sha256(self) -> str:
        """sha256 of the file; of the config and weight files (by name) for an HF folder."""
        if self.format == "gguf":
            return file_sha256(self.path)
        return _folder_sha256(self.path)

    @property
    def quantization(self) -> str:
        if self.format == "gguf":
            return self.gguf.quantization()
        config = _hf_config(self.path)
        dtype = str(config.get("dtype") or config.get("torch_dtype") or "float32")
        return DTYPES.get(dtype, dtype)

    @property
    def quantized(self) -> bool:
        return self.format == "gguf" and self.gguf.is_quantized()

    @property
    def base(self) -> str:
        """The model every variant made from this one derives from."""
        return str(self.card.get("base") or self.name or self.prefix)

    @property
    def prefix(self) -> str:
        """The default start of variant names: the source's name without a quantization tag
        (``smollm2-135m-instruct-F16`` -> ``smollm2-135m-instruct``)."""
        raw = self.name or (self.path.stem if self.format == "gguf" else self.path.name)
        return safe_name(QUANT_TAG.sub("", raw) or raw)

    def describe(self) -> dict[str, Any]:
        """The card's ``source`` entry for a variant made from this."""
        described = {
            "path": str(self.path),
            "sha256": self.sha256,
            "format": self.format,
            "quantization": self.quantization,
        }
        return described | ({"name": self.name} if self.name else {})

    def label(self) -> str:
        """One line for progress output."""
        size = _size_mb(self.path)
        return f"{self.name or self.path} ({self.format} {self.quantization}, {size:.1f} MB)"


def resolve_source(spec: str | None, store: Path | None) -> Source:
    """SOURCE -> a :class:`Source`; a path wins over a card or variant of the same name."""
    spec = spec or DEFAULT_SOURCE
    path = Path(spec).expanduser()
    if path.exists():
        return _from_path(spec, path.resolve())
    card = load_card(spec)
    if card is not None:
        return _from_card(spec, card)
    variant = find_variant(spec, store)
    if variant is not None:
        return _from_variant(spec, *variant)
    raise InputError(_unknown(spec, path, store))


def _unknown(spec: str, path: Path, store: Path | None) -> str:
    if "/" in spec or "\\" in spec or spec.endswith((".gguf", ".onnx")):
        return f"{path}: no such file; give a GGUF file, an HF model folder or a model name"
    cards = ", ".join(card_names()) or "none installed"
    return (
        f"SOURCE {spec!r}: no such file, model card (cards: {cards}) or variant in the store "
        f"({store_dir(store)}); see `harness models list`"
    )


def _from_path(spec: str, path: Path) -> Source:
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise InputError(
                f"{path}: a folder without config.json is not a Hugging Face model folder; "
                "give a GGUF file or a folder made by save_pretrained"
            )
        return Source(spec, path, "hf")
    return Source(spec, path, "gguf")


def _from_card(spec: str, card: dict[str, Any]) -> Source:
    if card.get("format") != "gguf":
        raise InputError(f"model card {spec!r} is a {card.get('format')} model; give a GGUF")
    source = Source(spec, card_path(card), "gguf", card["name"], card, "card")
    if card.get("sha256") and source.sha256 != card["sha256"]:
        raise InputError(
            f"{source.path}: sha256 is {source.sha256}, the card {spec!r} says "
            f"{card['sha256']} (corrupt or replaced); reinstall it: {card['install']} "
            "--force-reinstall"
        )
    return source


def _from_variant(spec: str, path: Path, card: dict[str, Any]) -> Source:
    if card["format"] != "gguf":
        raise InputError(
            f"variant {spec!r} is {card['format']} ({path}); give a GGUF variant, a GGUF "
            "file or an HF folder"
        )
    source = Source(spec, path, "gguf", card.get("name", spec), card, "variant")
    if card.get("sha256") and source.sha256 != card["sha256"]:
        raise InputError(
            f"{path}: sha256 differs from its card (changed since it was made); make the "
            "variant again with --force"
        )
    return source


def _hf_config(folder: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((folder / "config.json").read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise InputError(f"{folder / 'config.json'}: unreadable ({exc})") from None


def _folder_sha256(folder: Path) -> str:
    """One hash for an HF folder: its config and weight files, by name and content."""
    digest = hashlib.sha256()
    patterns = ("config.json", "*.safetensors", "*.bin")
    for path in sorted({p for pattern in patterns for p in folder.glob(pattern)}):
        digest.update(f"{path.name}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def _size_mb(path: Path) -> float:
    if path.is_file():
        return path.stat().st_size / 1e6
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6
