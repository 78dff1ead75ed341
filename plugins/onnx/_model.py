"""A model folder for the ``onnx`` backend: where its files are, its tokenizer and chat
template, and the session, each failure a one-line error naming the file and the fix."""

from __future__ import annotations

import json
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from harness_plugins.shared.store import find_variant
from harness_plugins.shared.store import store_dir

from harness import InputError

MODEL_FILES = ("model.onnx", "model.ort")
TOKENIZER = "tokenizer.json"


@dataclass(frozen=True)
class ModelFolder:
    """The files of one model: the graph, the tokenizer, its settings, and the store card."""

    folder: Path
    model_file: Path
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def tokenizer_file(self) -> Path:
        return self.folder / TOKENIZER

    def settings(self) -> dict[str, Any]:
        """``tokenizer_config.json`` merged over ``config.json`` (either may be absent)."""
        out: dict[str, Any] = {}
        for name in ("config.json", "generation_config.json", "tokenizer_config.json"):
            out |= _read_json(self.folder / name)
        return out


def locate(spec: str, base_dir: Path, file: str | None = None) -> ModelFolder:
    """A folder path (relative to the manifest) or a store variant -> its files, checked."""
    path = Path(spec).expanduser()
    path = path if path.is_absolute() else base_dir / path
    card: dict[str, Any] = {}
    if not path.exists():
        variant = find_variant(spec)
        if variant is None:
            raise InputError(
                f"model {spec!r}: no such folder ({path}) and no variant of that name in the "
                f"model store ({store_dir()}); set `model` to a folder holding model.onnx and "
                "tokenizer.json, or make one with `harness models export`"
            )
        path, card = variant[0].parent, variant[1]
        file = file or card["file"]
    folder = path if path.is_dir() else path.parent
    model_file = folder / file if file else _model_file(folder)
    _check_files(folder, model_file)
    return ModelFolder(folder.resolve(), model_file.resolve(), card)


def _model_file(folder: Path) -> Path:
    for name in MODEL_FILES:
        if (folder / name).is_file():
            return folder / name
    raise InputError(
        f"{folder}: no model.onnx or model.ort in this folder; set `file` to the model file's "
        "name or point `model` at the folder `harness models export` wrote"
    )


def _check_files(folder: Path, model_file: Path) -> None:
    if not model_file.is_file():
        raise InputError(f"{model_file}: model file not found; check `model` and `file`")
    if model_file.stat().st_size < 16:
        raise InputError(f"{model_file}: {model_file.stat().st_size} bytes, not a model; re-export")
    if not (folder / TOKENIZER).is_file():
        raise InputError(
            f"{folder / TOKENIZER}: missing; the onnx backend needs the model's tokenizer.json "
            "next to the model file (`harness models export` writes it)"
        )


def load_tokenizer(model: ModelFolder) -> Any:
    """The ``tokenizers`` tokenizer of the folder (a broken file is named)."""
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_file(str(model.tokenizer_file))
    except Exception as exc:
        raise InputError(
            f"{model.tokenizer_file}: not a tokenizer the `tokenizers` library reads ({exc})"
        ) from None


def make_session(model: ModelFolder, threads: int, spinning: bool, provider: str) -> Any:
    """An ONNX Runtime session; a truncated or foreign file is an error naming it."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(model.model_file), options, providers=[provider])
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"{model.model_file}: ONNX Runtime cannot load it ({first[:300]}); the file is "
            "truncated or not a model: export it again"
        ) from None


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InputError(f"{path}: not valid JSON ({exc}); export the model again") from None
    return value if isinstance(value, dict) else {}
