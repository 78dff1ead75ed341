"""A Llama-architecture decoder in plain torch, loaded from a GGUF file's dequantized weights.

Why not llama.cpp or transformers: the layer-wise diagnostic needs every block's input and
output, the attention probabilities of every head, and gradients and Hessian-vector products
with respect to any block's input, with the weights exactly as the quantized file stores them.
Dequantizing each tensor with the ``gguf`` package gives those weights bit for bit (the
quantization error is then exact and differentiable), and a ~100-line decoder exposes the rest.

The layout follows llama.cpp's ``llama`` architecture: RMSNorm, grouped-query attention with
rotary embeddings on adjacent pairs (GGUF files store Q and K permuted for that), SwiGLU, and an
output head tied to the token embedding when the file has no ``output.weight``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._torch import torch

Tensor = torch.Tensor
nn = torch.nn


@dataclass(frozen=True)
class LlamaConfig:
    """Shapes and constants of a Llama-style decoder (as GGUF's ``llama.*`` keys give them)."""

    vocab: int
    dim: int
    layers: int
    heads: int
    kv_heads: int
    ffn: int
    rope_base: float = 10000.0
    eps: float = 1e-5

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads


class Block(nn.Module):
    """One decoder block: pre-norm attention then pre-norm SwiGLU, both residual."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        c, kv = config, config.kv_heads * config.head_dim
        self.config = config
        self.attn_norm = nn.Parameter(torch.ones(c.dim))
        self.q = nn.Linear(c.dim, c.dim, bias=False)
        self.k = nn.Linear(c.dim, kv, bias=False)
        self.v = nn.Linear(c.dim, kv, bias=False)
        self.o = nn.Linear(c.dim, c.dim, bias=False)
        self.ffn_norm = nn.Parameter(torch.ones(c.dim))
        self.gate = nn.Linear(c.dim, c.ffn, bias=False)
        self.up = nn.Linear(c.dim, c.ffn, bias=False)
        self.down = nn.Linear(c.ffn, c.dim, bias=False)

    def forward(
        self, h: Tensor, rope: tuple[Tensor, Tensor], blocked: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """``h`` [T, dim] -> (the block's output [T, dim], attention probabilities [H, T, T]).
        ``blocked`` [T, T] (True: may not attend) replaces the causal mask."""
        x = rms_norm(h, self.attn_norm, self.config.eps)
        attended, probs = self.attention(x, rope, blocked)
        h = h + attended
        x = rms_norm(h, self.ffn_norm, self.config.eps)
        return h + self.down(nn.functional.silu(self.gate(x)) * self.up(x)), probs

    def attention(
        self, x: Tensor, rope: tuple[Tensor, Tensor], blocked: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        c, t = self.config, x.shape[0]
        q = rotate(self.q(x).view(t, c.heads, c.head_dim), rope)
        k = rotate(self.k(x).view(t, c.kv_heads, c.head_dim), rope)
        v = self.v(x).view(t, c.kv_heads, c.head_dim)
        group = c.heads // c.kv_heads
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        scores = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(c.head_dim)
        if blocked is None:
            blocked = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        probs = scores.masked_fill(blocked, float("-inf")).softmax(dim=-1)
        out = torch.einsum("hqk,khd->qhd", probs, v).reshape(t, c.dim)
        return self.o(out), probs


class Llama(nn.Module):
    """Embedding, blocks, final norm and head. ``run`` exposes every block boundary."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab, config.dim)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.norm = nn.Parameter(torch.ones(config.dim))
        self.head = nn.Linear(config.dim, config.vocab, bias=False)

    def rope(self, positions: int | Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """Rotary tables for positions ``0..positions-1`` (or the given position of each token)."""
        half = self.config.head_dim // 2
        inv = self.config.rope_base ** (-torch.arange(half, dtype=torch.float64) * 2 / (2 * half))
        if isinstance(positions, int):
            positions = torch.arange(positions)
        angles = positions.to(torch.float64)[:, None] * inv[None, :]
        return angles.cos().to(dtype), angles.sin().to(dtype)

    def embed_ids(self, ids: list[int] | Tensor) -> Tensor:
        ids = torch.as_tensor(ids, dtype=torch.long)
        out: Tensor = self.embed(ids)
        return out

    def logprobs(self, h: Tensor) -> Tensor:
        """Final norm, head and log-softmax of the last block's output."""
        logits = self.head(rms_norm(h, self.norm, self.config.eps))
        return torch.log_softmax(logits, dim=-1)

    def tail(self, h: Tensor, start: int) -> Tensor:
        """Blocks ``start..L-1`` (0-based) applied to ``h``, then log-probabilities."""
        rope = self.rope(h.shape[0], h.dtype)
        for block in self.blocks[start:]:
            h, _ = block(h, rope)
        return self.logprobs(h)

    def run(self, ids: list[int] | Tensor, embedded: Tensor | None = None) -> Trace:
        """Every boundary: ``hidden[0]`` is the embedding (``embedded`` when given: a leaf
        to differentiate against), ``hidden[l]`` block l's output."""
        h = self.embed_ids(ids) if embedded is None else embedded
        rope = self.rope(h.shape[0], h.dtype)
        hidden, attention = [h], []
        for block in self.blocks:
            h, probs = block(h, rope)
            hidden.append(h)
            attention.append(probs)
        return Trace(hidden, attention, self.logprobs(h))

    def choice_logprobs(self, prompt: list[int], choices: list[list[int]]) -> list[float]:
        """Each choice's summed log-probability after ``prompt``, all in one forward pass:
        the choices follow the prompt side by side, each at the positions it would have alone
        and attending only to the prompt and itself (what scoring them one by one gives)."""
        ids, positions, owner = list(prompt), list(range(len(prompt))), [-1] * len(prompt)
        for index, choice in enumerate(choices):
            ids += choice
            positions += range(len(prompt), len(prompt) + len(choice))
            owner += [index] * len(choice)
        rows = self._packed(ids, torch.tensor(positions), torch.tensor(owner))
        return [
            self._choice_score(rows, ids, owner, index, len(prompt))
            for index in range(len(choices))
        ]

    def _packed(self, ids: list[int], positions: Tensor, owner: Tensor) -> Tensor:
        order = torch.arange(len(ids))
        visible = (order[None, :] <= order[:, None]) & (
            (owner[None, :] == -1) | (owner[None, :] == owner[:, None])
        )
        h = self.embed_ids(ids)
        rope = self.rope(positions, h.dtype)
        for block in self.blocks:
            h, _ = block(h, rope, ~visible)
        return self.logprobs(h)

    @staticmethod
    def _choice_score(
        rows: Tensor, ids: list[int], owner: list[int], index: int, start: int
    ) -> float:
        spots = [i for i, o in enumerate(owner) if o == index]
        previous = [start - 1, *spots[:-1]]
        return float(sum(rows[p, ids[s]] for p, s in zip(previous, spots, strict=True)))


@dataclass
class Trace:
    """One forward pass: L+1 hidden states [T, dim], L attention maps [H, T, T], log-probs."""

    hidden: list[Tensor]
    attention: list[Tensor]
    logprobs: Tensor


def rms_norm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rotate(x: Tensor, rope: tuple[Tensor, Tensor]) -> Tensor:
    """Rotary embedding on adjacent pairs (llama.cpp's "normal" rope), ``x`` [T, heads, d]."""
    cos, sin = rope[0][: x.shape[0], None, :], rope[1][: x.shape[0], None, :]
    even, odd = x[..., 0::2], x[..., 1::2]
    return torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1).flatten(-2)


# ------------------------------------------------------------------------------ from GGUF
GGUF_NAMES = {
    "attn_norm.weight": "attn_norm",
    "attn_q.weight": "q.weight",
    "attn_k.weight": "k.weight",
    "attn_v.weight": "v.weight",
    "attn_output.weight": "o.weight",
    "ffn_norm.weight": "ffn_norm",
    "ffn_gate.weight": "gate.weight",
    "ffn_up.weight": "up.weight",
    "ffn_down.weight": "down.weight",
}


def config_from_gguf(fields: dict[str, Any]) -> LlamaConfig:
    """The decoder's shapes from GGUF metadata; anything but ``llama`` is refused."""
    arch = fields.get("general.architecture")
    if arch != "llama":
        raise ValueError(f"architecture {arch!r} is not supported (only llama-style GGUF files)")
    return LlamaConfig(
        vocab=len(fields["tokenizer.ggml.tokens"]),
        dim=int(fields["llama.embedding_length"]),
        layers=int(fields["llama.block_count"]),
        heads=int(fields["llama.attention.head_count"]),
        kv_heads=int(
            fields.get("llama.attention.head_count_kv", fields["llama.attention.head_count"])
        ),
        ffn=int(fields["llama.feed_forward_length"]),
        rope_base=float(fields.get("llama.rope.freq_base", 10000.0)),
        eps=float(fields.get("llama.attention.layer_norm_rms_epsilon", 1e-5)),
    )


def read_gguf(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, str]]:
    """Metadata, dequantized float32 tensors and each tensor's stored type."""
    from gguf import GGUFReader
    from gguf.quants import dequantize

    reader = GGUFReader(str(path))
    fields = {name: _field(field) for name, field in reader.fields.items()}
    tensors, types = {}, {}
    for tensor in reader.tensors:
        array = dequantize(tensor.data, tensor.tensor_type)  # F32 tensors: a read-only view
        tensors[tensor.name] = np.array(array, dtype=np.float32, copy=True)
        types[tensor.name] = tensor.tensor_type.name
    return fields, tensors, types


def _field(field: Any) -> Any:
    try:
        return field.contents()
    except Exception:  # a field type the reader cannot turn into Python: not needed here
        return None


def load_gguf(path: Path, dtype: torch.dtype = torch.float32) -> tuple[Llama, dict[str, Any]]:
    """A :class:`Llama` holding the file's dequantized weights, and the file's metadata."""
    fields, tensors, types = read_gguf(path)
    model = Llama(config_from_gguf(fields)).to(dtype)
    state = {"embed.weight": tensors["token_embd.weight"], "norm": tensors["output_norm.weight"]}
    state["head.weight"] = tensors.get("output.weight", tensors["token_embd.weight"])
    for name, array in tensors.items():
        parts = name.split(".", 2)
        if parts[0] == "blk" and parts[2] in GGUF_NAMES:
            state[f"blocks.{parts[1]}.{GGUF_NAMES[parts[2]]}"] = array
    model.load_state_dict({k: torch.from_numpy(v).to(dtype) for k, v in state.items()})
    fields["harness.tensor_types"] = types
    return model.eval(), fields


def random_llama(config: LlamaConfig, seed: int = 0, dtype: torch.dtype = torch.float64) -> Llama:
    """A seeded random model (tests and examples): weights ~ N(0, 1/sqrt(fan_in))."""
    generator = torch.Generator().manual_seed(seed)
    model = Llama(config).to(dtype)
    with torch.no_grad():
        for _name, param in model.named_parameters():
            if param.dim() == 1:
                param.copy_(1 + 0.1 * torch.randn(param.shape, generator=generator, dtype=dtype))
            else:
                param.copy_(torch.randn(param.shape, generator=generator, dtype=dtype))
                param.div_(math.sqrt(param.shape[-1]))
    return model.eval()


def noisy_copy(model: Llama, block: int, scale: float = 0.05, seed: int = 11) -> Llama:
    """A copy of ``model`` with seeded Gaussian noise on every weight of one block (tests and
    examples: damage whose place is known)."""
    import copy

    changed = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in changed.blocks[block].parameters():
            noise = torch.randn(param.shape, generator=generator, dtype=param.dtype)
            param.add_(scale * param.abs().mean() * noise)
    return changed
