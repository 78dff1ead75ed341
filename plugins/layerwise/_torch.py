"""torch, imported with OpenMP's passive wait policy unless the user chose a policy.

torch's OpenMP threads spin while they wait for work. On a machine whose cores are busy with
other processes (CI, a shared laptop, several runs at once) the spinning threads starve the
ones doing the work: the layerwise self-tests took 242 s instead of 27 s with four other jobs
on two cores. Passive waiting costs little on an idle machine. The variable is read when
OpenMP starts, so it only takes effect if torch was not imported before.
"""

from __future__ import annotations

import os
import sys

if "torch" not in sys.modules:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

__all__ = ["torch"]
