"""A GGUF file's own tokenizer, rebuilt with the ``tokenizers`` library from its metadata.

The layer-wise probe compares two models token for token, so both must split a text the same
way, and the same way llama.cpp does (tests check it against llama.cpp on the probe text).
Byte-level BPE files (``tokenizer.ggml.model == "gpt2"``) are supported: the vocabulary and
merges come from the file, the pre-tokenizer from ``tokenizer.ggml.pre`` as llama.cpp maps it.
"""

from __future__ import annotations

from typing import Any

#: llama.cpp pre-tokenizer names that split digits one by one before the GPT-2 regex.
SINGLE_DIGITS = {"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva"}
CONTROL = 3  # llama.cpp's LLAMA_TOKEN_TYPE_CONTROL


class GGUFTokenizer:
    """``encode(text)`` -> token ids, with the file's BOS prepended when it asks for one."""

    def __init__(self, fields: dict[str, Any]) -> None:
        if fields.get("tokenizer.ggml.model") != "gpt2":
            raise ValueError(
                f"tokenizer {fields.get('tokenizer.ggml.model')!r} is not supported "
                "(only byte-level BPE, tokenizer.ggml.model = gpt2)"
            )
        self.fields = fields
        self.tokens: list[str] = list(fields["tokenizer.ggml.tokens"])
        self.bos = fields.get("tokenizer.ggml.bos_token_id")
        self.add_bos = bool(fields.get("tokenizer.ggml.add_bos_token", False))
        self._tokenizer = _build(fields, self.tokens)

    def encode(self, text: str, bos: bool | None = None) -> list[int]:
        ids: list[int] = self._tokenizer.encode(text, add_special_tokens=False).ids
        add = self.add_bos if bos is None else bos
        return [int(self.bos), *ids] if add and self.bos is not None else ids

    def decode(self, ids: list[int]) -> str:
        text: str = self._tokenizer.decode(ids, skip_special_tokens=False)
        return text

    def token_id(self, text: str) -> int | None:
        found: int | None = self._tokenizer.token_to_id(text)
        return found


def _build(fields: dict[str, Any], tokens: list[str]) -> Any:
    from tokenizers import AddedToken
    from tokenizers import Tokenizer
    from tokenizers import decoders
    from tokenizers import models
    from tokenizers import pre_tokenizers

    merges = [tuple(m.split(" ", 1)) for m in fields.get("tokenizer.ggml.merges") or []]
    vocab = {token: index for index, token in enumerate(tokens)}
    tokenizer = Tokenizer(models.BPE(vocab, merges, ignore_merges=False))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if fields.get("tokenizer.ggml.pre") in SINGLE_DIGITS:
        digits = pre_tokenizers.Digits(individual_digits=True)
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([digits, byte_level])
    else:
        tokenizer.pre_tokenizer = byte_level
    tokenizer.decoder = decoders.ByteLevel()
    types = fields.get("tokenizer.ggml.token_type") or []
    specials = [tokens[i] for i, kind in enumerate(types) if kind == CONTROL]
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    return tokenizer
