"""Any backend a manifest can name, as an lm-eval ``LM``.

``HarnessLM({"type": "llamacpp", "model": "smollm2-135m-instruct"})`` builds the backend as a
manifest entry would be built (same parameters, same validation) and answers lm-eval's three
request types as :mod:`harness_plugins.lmeval._requests` says (the ``lmeval`` task answers
them the same way, so both directions give the same scores).

From lm-eval's command line the model is ``harness`` with the backend's parameters as
``--model_args type=llamacpp,model=smollm2-135m-instruct`` (``harness lm-eval`` registers it
first; see docs/lm-eval.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from harness import BuildContext

from ._requests import answer


@register_model("harness")
class HarnessLM(LM):
    """One harness backend behind lm-eval's interface (requests answered one at a time)."""

    def __init__(self, backend: dict[str, Any] | Any, base_dir: str | Path = ".") -> None:
        super().__init__()
        self.spec = backend if isinstance(backend, dict) else None
        context = BuildContext("lm-eval", Path(base_dir))
        self.backend = context.build("backend", backend) if isinstance(backend, dict) else backend

    @classmethod
    def create_from_arg_string(
        cls, arg_string: str, additional_config: dict[str, Any] | None = None
    ) -> HarnessLM:
        """``type=llamacpp,model=smollm2-135m-instruct,max_tokens=64`` (lm-eval's syntax)."""
        from lm_eval.utils import simple_parse_args_string

        return cls(simple_parse_args_string(arg_string))

    @classmethod
    def create_from_arg_obj(
        cls, arg_dict: dict[str, Any], additional_config: dict[str, Any] | None = None
    ) -> HarnessLM:
        """lm-eval's command line: ``--model_args`` as a dict (its batch size and device, in
        ``additional_config``, do not apply: requests are answered one at a time)."""
        return cls(dict(arg_dict))

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        return [str(answer(self.backend, "generate_until", r.args)[0]) for r in requests]

    def loglikelihood(
        self, requests: list[Any], disable_tqdm: bool = False
    ) -> list[tuple[float, bool]]:
        return [answer(self.backend, "loglikelihood", r.args)[0] for r in requests]

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        return [answer(self.backend, "loglikelihood_rolling", r.args)[0] for r in requests]
