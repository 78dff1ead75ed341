"""lm-eval's own command line with the ``harness`` model registered (as ``harness lm-eval``)::

    python -m harness_plugins.lmeval --model harness \
        --model_args type=llamacpp,model=smollm2-135m-instruct,engine=llama-cpp-python \
        --tasks harness_capitals --include_path registry/lmeval

Every lm-eval option works as with ``lm_eval``; ``--model_args`` is the backend's manifest
entry (``type`` and its parameters).
"""

from __future__ import annotations

import harness_plugins.lmeval.lm  # noqa: F401 (registers the ``harness`` model)
from harness_plugins.lmeval._suite import anchor_everywhere
from lm_eval.__main__ import cli_evaluate

if __name__ == "__main__":
    anchor_everywhere()
    cli_evaluate()
