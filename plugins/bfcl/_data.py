"""BFCL's data, read from the files inside the ``bfcl-eval`` wheel (never imported).

``bfcl-eval`` is installed with ``--no-deps``: its declared dependencies pin numpy 1.26 and pull
a dozen provider SDKs. We only read its data folder, located with ``importlib.util.find_spec``.
Question and answer files are JSON Lines; answers line up with questions by position, as in
BFCL's own evaluator.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version
from pathlib import Path
from typing import Any
from typing import get_args

from harness import InputError
from harness import read_jsonl

from . import AstCategory
from . import RelevanceCategory

PACKAGE = "bfcl-eval"
INSTALL_HINT = "install BFCL's data with: pip install --no-deps bfcl-eval==2026.3.23"
#: The categories as tuples; declared once, as the ``Literal`` types of the task's parameters.
AST_CATEGORIES: tuple[str, ...] = get_args(AstCategory)
RELEVANCE_CATEGORIES: tuple[str, ...] = get_args(RelevanceCategory)
CATEGORIES = AST_CATEGORIES + RELEVANCE_CATEGORIES


def data_dir() -> Path:
    spec = importlib.util.find_spec("bfcl_eval")
    if spec is None or spec.origin is None:
        raise InputError(
            f"BFCL data not found: the {PACKAGE} package is not installed; {INSTALL_HINT}"
        )
    return Path(spec.origin).parent / "data"


def bfcl_version() -> str:
    try:
        return version(PACKAGE)
    except PackageNotFoundError:
        return "unknown"


def question_file(category: str) -> Path:
    return data_dir() / f"BFCL_v4_{category}.json"


def answer_file(category: str) -> Path | None:
    if category in RELEVANCE_CATEGORIES:
        return None
    return data_dir() / "possible_answer" / f"BFCL_v4_{category}.json"


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        raise InputError(f"{path}: BFCL data file missing; {INSTALL_HINT}")
    for _, entry in read_jsonl(path):
        yield entry


def entries(category: str) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]] | None]]:
    """(question entry, ground truth or None) for every item of a category, in file order."""
    answers_path = answer_file(category)
    answers = _lines(answers_path) if answers_path else None
    for entry in _lines(question_file(category)):
        truth = next(answers, None) if answers is not None else None
        if answers is not None and truth is None:
            raise InputError(f"{answers_path}: fewer answers than questions in {category}")
        yield entry, (truth["ground_truth"] if truth is not None else None)


@functools.cache  # the wheel's files do not change while a process runs
def count(category: str) -> int:
    """Entries in a category (its question file's non-blank lines)."""
    with question_file(category).open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def format_ids_file() -> Path:
    """BFCL's ``format_sensitivity`` id map: category -> the entry ids it probes."""
    return data_dir() / "BFCL_v4_format_sensitivity.json"


@functools.cache
def format_ids() -> dict[str, list[str]]:
    """The id map, read once (BFCL's 200 single-turn ids over the eight AST categories)."""
    path = format_ids_file()
    if not path.exists():
        raise InputError(f"{path}: BFCL data file missing; {INSTALL_HINT}")
    loaded = json.loads(path.read_text(encoding="utf-8"))
    return {str(k): [str(i) for i in v] for k, v in loaded.items()}
