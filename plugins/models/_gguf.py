"""Read a GGUF file's header without the ``gguf`` package: metadata scalars and the tensor
table, which is enough to reject a file that is not a GGUF or was cut short, to count tensor
types and to measure bits per weight.

``gguf.GGUFReader`` also parses every array (49,152 token strings for SmolLM2), which takes
2.6 s per file; this reader skips arrays and takes about 0.1 s, so ``models list`` and every
card written after a quantization stay cheap, and neither needs the ``gguf`` package.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from harness import InputError

MAGIC = b"GGUF"
HEADER_READ = 16 << 20
DEFAULT_ALIGNMENT = 32
# GGML tensor type id -> (name, elements per block, bytes per block), from ggml.h.
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 40),
    10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66),
    17: ("IQ2_XS", 256, 74),
    18: ("IQ3_XXS", 256, 98),
    19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18),
    21: ("IQ3_S", 256, 110),
    22: ("IQ2_S", 256, 82),
    23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", 256, 54),
    35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17),
    40: ("NVFP4", 64, 36),
    41: ("Q1_0", 128, 18),
}
TYPE_IDS = {name: type_id for type_id, (name, _, _) in GGML_TYPES.items()}
FLOAT_TYPES = frozenset({"F32", "F16", "BF16", "F64"})
# general.file_type (llama_ftype) -> the name llama.cpp's quantize tool uses.
FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S",
    29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0",
}  # fmt: skip
# GGUF value type id -> struct format of a scalar (8: string, 9: array are handled apart).
SCALARS = {
    0: "B",
    1: "b",
    2: "H",
    3: "h",
    4: "I",
    5: "i",
    6: "f",
    7: "?",
    10: "Q",
    11: "q",
    12: "d",
}
STRING, ARRAY = 8, 9


class CorruptGGUF(ValueError):
    """The bytes do not parse as GGUF (cut short or not one)."""


@dataclass(frozen=True)
class Tensor:
    """One entry of the tensor table."""

    name: str
    type_name: str
    shape: tuple[int, ...]
    offset: int
    n_elements: int
    n_bytes: int


@dataclass(frozen=True)
class GGUFInfo:
    """What a GGUF header says: version, scalar metadata, tensors and the expected size."""

    path: Path
    version: int
    metadata: dict[str, Any]
    tensors: tuple[Tensor, ...]
    expected_size: int
    arrays: dict[str, int] = field(default_factory=dict)

    @property
    def weights(self) -> tuple[Tensor, ...]:
        """The weight matrices (2-D or more): the tensors a quantizer changes."""
        return tuple(t for t in self.tensors if len(t.shape) >= 2)

    def type_counts(self) -> dict[str, int]:
        """How many tensors of each GGML type, most common first."""
        return dict(Counter(t.type_name for t in self.tensors).most_common())

    def bits_per_weight(self) -> float:
        """Average stored bits per element of the weight matrices, block scales included."""
        weights = self.weights
        elements = sum(t.n_elements for t in weights)
        return round(8 * sum(t.n_bytes for t in weights) / elements, 2) if elements else 0.0

    def quantization(self) -> str:
        """The file's quantization as llama.cpp names it (general.file_type), else the most
        common weight type."""
        file_type = self.metadata.get("general.file_type")
        if isinstance(file_type, int) and file_type in FILE_TYPES:
            return FILE_TYPES[file_type]
        counts = Counter(t.type_name for t in self.weights)
        return counts.most_common(1)[0][0] if counts else "F32"

    def is_quantized(self) -> bool:
        """True when some weight matrix is stored in a quantized type (not F32/F16/BF16)."""
        return any(t.type_name not in FLOAT_TYPES for t in self.weights)


def read_gguf(path: Path) -> GGUFInfo:
    """The header of the GGUF file at ``path``; an :class:`InputError` naming the file and the
    fix when it is missing, not a GGUF, or shorter than its tensor table says."""
    if not path.is_file():
        raise InputError(f"{path}: no such file; give a GGUF file, a model card or a variant")
    size = path.stat().st_size
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != MAGIC:
        raise InputError(
            f"{path}: not a GGUF file (starts with {magic!r}, not b'GGUF'); give a .gguf "
            "model file (llama.cpp's format)"
        )
    info = _parse_growing(path, size)
    if info.expected_size > size:
        raise InputError(_truncated(path, size, f"its tensors need {info.expected_size}"))
    return info


def _parse_growing(path: Path, size: int) -> GGUFInfo:
    """Parse the first 16 MiB, then 8 times more, until the header fits: headers are small
    (1.8 MB for SmolLM2's 49k-token vocabulary) and a model file can be many GB."""
    limit = HEADER_READ
    while True:
        with path.open("rb") as handle:
            buf = handle.read(limit)
        try:
            return _parse(path, buf)
        except (CorruptGGUF, struct.error, IndexError, UnicodeDecodeError) as exc:
            if len(buf) >= size:
                raise InputError(_truncated(path, size, f"header does not parse: {exc}")) from None
        limit *= 8


def _truncated(path: Path, size: int, why: str) -> str:
    return (
        f"{path}: truncated or corrupt GGUF ({size} bytes; {why}); download or copy the file again"
    )


class _Cursor:
    """Little-endian reads from a buffer, with bounds and sanity checks."""

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 4  # after the magic

    def scalar(self, fmt: str) -> Any:
        value = struct.unpack_from("<" + fmt, self.buf, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return value

    def count(self, limit: int) -> int:
        """A length or count that must fit in what is left of the file."""
        value = int(self.scalar("Q"))
        if value > limit:
            raise CorruptGGUF(f"count {value} at byte {self.pos - 8} exceeds {limit}")
        return value

    def string(self) -> str:
        length = self.count(len(self.buf) - self.pos)
        text = self.buf[self.pos : self.pos + length].decode("utf-8")
        self.pos += length
        return text

    def value(self, vtype: int) -> Any:
        if vtype == STRING:
            return self.string()
        if vtype in SCALARS:
            return self.scalar(SCALARS[vtype])
        raise CorruptGGUF(f"unknown value type {vtype} at byte {self.pos}")

    def skip_array(self) -> int:
        """Skip an array value; return its length."""
        vtype = self.scalar("I")
        length = self.count(len(self.buf))
        if vtype in SCALARS:
            self.pos += length * struct.calcsize(SCALARS[vtype])
        else:
            for _ in range(length):
                if vtype == ARRAY:
                    self.skip_array()
                else:
                    self.value(vtype)
        return length


def _parse(path: Path, buf: bytes) -> GGUFInfo:
    cur = _Cursor(buf)
    version = cur.scalar("I")
    if version not in (2, 3):
        raise CorruptGGUF(f"GGUF version {version} (readable: 2, 3)")
    n_tensors, n_kv = cur.count(len(buf) // 8), cur.count(len(buf) // 8)
    metadata, arrays = _metadata(cur, n_kv)
    tensors = tuple(_tensor(cur) for _ in range(n_tensors))
    alignment = int(metadata.get("general.alignment", DEFAULT_ALIGNMENT))
    start = -(-cur.pos // alignment) * alignment
    end = max((t.offset + t.n_bytes for t in tensors), default=0)
    return GGUFInfo(path, version, metadata, tensors, start + end, arrays)


def _metadata(cur: _Cursor, n_kv: int) -> tuple[dict[str, Any], dict[str, int]]:
    metadata: dict[str, Any] = {}
    arrays: dict[str, int] = {}
    for _ in range(n_kv):
        key = cur.string()
        vtype = cur.scalar("I")
        if vtype == ARRAY:
            arrays[key] = cur.skip_array()
        else:
            metadata[key] = cur.value(vtype)
    return metadata, arrays


def _tensor(cur: _Cursor) -> Tensor:
    name = cur.string()
    n_dims = cur.scalar("I")
    if n_dims > 8:
        raise CorruptGGUF(f"tensor {name!r} has {n_dims} dimensions")
    shape = tuple(int(cur.scalar("Q")) for _ in range(n_dims))
    type_id, offset = cur.scalar("I"), cur.scalar("Q")
    if type_id not in GGML_TYPES:
        raise CorruptGGUF(f"tensor {name!r} has unknown type {type_id}")
    type_name, block, block_bytes = GGML_TYPES[type_id]
    n_elements = 1
    for dim in shape:
        n_elements *= dim
    return Tensor(name, type_name, shape, offset, n_elements, n_elements // block * block_bytes)
