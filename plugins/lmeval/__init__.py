"""lm-eval interoperability. This first part is the direction lm-eval users meet first: any
backend a manifest can name, as an lm-eval ``LM`` (:class:`harness_plugins.lmeval.lm.HarnessLM`,
registered in lm-eval's model registry as ``harness``), for ``lm_eval.simple_evaluate`` and
lm-eval's own command line. ``registry/lmeval/`` ships a small lm-eval YAML suite on data it
ships (a generation task, a multiple-choice task, a group), so it all runs offline.

Needs the ``lm-eval`` extra (``pip install -e .[lm-eval]``); nothing here imports lm-eval
until it is used.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def suite_path() -> Path:
    """The folder of the shipped lm-eval YAML suite (give it to lm-eval as ``include_path``)."""
    return Path(str(resources.files("harness_registry") / "lmeval"))
