"""The report's sample browser: filter the samples by task, backend, subtask, outcome, pattern
or error, and open one to see its prompt, raw output, decoded calls, expected answer and, for
multi-step samples, its trajectory.

The page carries at most :data:`MAX_SAMPLES` samples (each (task, backend) gets an equal
share, failures first), every long text cut, so a report of 100,000 samples stays small and
opens fast; ``samples.jsonl`` has them all. Without JavaScript the first samples are plain
HTML (a ``<details>`` each); with it, the filters work on every sample the page carries, and
the filter state lives in the address (``report.html#task=bfcl&outcome=fail``), so a link
opens the same view.
"""

from __future__ import annotations

import html
import json
from typing import Any

from harness._results import JSON

PREFERRED = ("accuracy", "success", "exact_match", "acc", "accuracy_optimal")

MAX_SAMPLES = 2_000
#: Samples written as plain HTML for readers without JavaScript.
STATIC = 60
TEXT_LIMIT = 1_500
STEP_LIMIT = 40


class Picker:
    """Chooses the samples the page carries, in one pass: per (task, backend) up to ``quota``
    samples, failed ones (an error, a headline score below 1, or a pattern) first. It may be
    fed while the run plays, before the aggregates say which metric is each task's headline:
    a task's declared headline is used then, else the record's first of ``accuracy``,
    ``success``, ``exact_match``, ``acc``."""

    def __init__(self, headlines: dict[str, str], groups: int, total: int = MAX_SAMPLES) -> None:
        self.headlines = headlines
        self.quota = max(20, total // max(groups, 1))
        self.failed: dict[tuple[str, str], list[JSON]] = {}
        self.passed: dict[tuple[str, str], list[JSON]] = {}
        self.seen: dict[tuple[str, str], int] = {}

    def add(self, record: JSON) -> None:
        key = (record["task"], record["backend"])
        seen = self.seen[key] = self.seen.get(key, 0) + 1
        if seen > 2 * self.quota and self._full(key):  # the common case in a large run
            return
        headline = self._headline(record)
        score = (record.get("scores") or {}).get(headline) if headline else None
        bucket = self.passed if _outcome(record, score) == "pass" else self.failed
        kept = bucket.setdefault(key, [])
        if len(kept) < self.quota:  # compacted only when kept: most records are not
            kept.append(compact(record, headline))

    def _full(self, key: tuple[str, str]) -> bool:
        failed, passed = self.failed.get(key, ()), self.passed.get(key, ())
        return len(failed) >= self.quota and len(passed) >= self.quota

    def _headline(self, record: JSON) -> str | None:
        declared = self.headlines.get(record["task"])
        if declared is not None:
            return declared
        scores = record.get("scores") or {}
        return next((m for m in PREFERRED if m in scores), None)

    def chosen(self, headlines: dict[str, str] | None = None) -> list[JSON]:
        """The samples, scored by ``headlines`` (the report's) when given."""
        out = []
        for key in sorted(self.seen):
            group = self.failed.get(key, []) + self.passed.get(key, [])
            if headlines:
                group = sorted((rescored(i, headlines) for i in group), key=_passed_last)
            out += group[: self.quota]
        return out

    def note(self) -> str:
        total, shown = sum(self.seen.values()), min(sum(self.seen.values()), self._kept())
        if shown == total:
            return f"All {total} samples."
        return (
            f"{shown} of {total} samples (up to {self.quota} per task and backend, failures "
            "first); samples.jsonl has every one."
        )

    def _kept(self) -> int:
        return sum(
            min(self.quota, len(self.failed.get(k, [])) + len(self.passed.get(k, [])))
            for k in self.seen
        )


def rescored(item: JSON, headlines: dict[str, str]) -> JSON:
    """The item with the report's headline score and outcome."""
    headline = headlines.get(item["task"])
    if headline is None or item["outcome"] == "error":
        return item
    score = item["scores"].get(headline)
    outcome = _outcome({"patterns": item["patterns"]}, score)
    return {**item, "score": score, "outcome": outcome}


def _passed_last(item: JSON) -> bool:
    return bool(item["outcome"] == "pass")


def compact(record: JSON, headline: str | None) -> JSON:
    """What the browser shows of one record, long texts cut."""
    scores = record.get("scores") or {}
    score = scores.get(headline) if headline else None
    return {
        "task": record["task"],
        "backend": record["backend"],
        "id": str(record["sample_id"]),
        "subtask": record.get("subtask") or "",
        "repeat": record.get("repeat"),
        "score": score,
        "outcome": _outcome(record, score),
        "scores": {k: round(float(v), 4) for k, v in list(scores.items())[:16] if v is not None},
        "error": _cut(record.get("error")),
        "patterns": [str(p) for p in record.get("patterns") or []],
        "prompt": _cut(_prompt(record)),
        "output": _cut(record.get("output")),
        "calls": _cut(record.get("calls")),
        "target": _cut(record.get("target")),
        "trajectory": [_step(s) for s in (record.get("trajectory") or [])[:STEP_LIMIT]],
    }


def _outcome(record: JSON, score: Any) -> str:
    if record.get("error") is not None:
        return "error"
    if score is None:
        return "unscored"
    return "pass" if float(score) >= 1.0 and not record.get("patterns") else "fail"


def _prompt(record: JSON) -> Any:
    if record.get("prompt"):
        return record["prompt"]
    steps = record.get("trajectory") or []
    return steps[0].get("prompt") if steps and isinstance(steps[0], dict) else None


def _step(step: Any) -> JSON:
    if not isinstance(step, dict):
        return {"observation": _cut(step, 300)}
    return {
        "thought": _cut(step.get("thought"), 300),
        "actions": _cut(
            step.get("actions") if step.get("actions") is not None else step.get("parse_error"), 400
        ),
        "observation": _cut(step.get("observation"), 400),
        "progress": step.get("progress"),
        "error": _cut(step.get("error"), 200),
    }


def _cut(value: Any, limit: int = TEXT_LIMIT) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- HTML ---------------------------------------------------------------------------------------


def browser_html(samples: list[JSON], note: str) -> str:
    """The browser: filter controls, the sample table (plain HTML for the first samples,
    replaced by the script), the data, and the script."""
    data = json.dumps(samples, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
    controls = "".join(_select(name, label) for name, label in FILTERS)
    static = "".join(_static_row(s) for s in samples[:STATIC])
    return (
        f"<p>{html.escape(note)}</p>"
        f'<form id="filters" class="filters" aria-label="Filter the samples">{controls}'
        '<label>sample id <input type="search" name="q" size="16"></label>'
        '<output id="matches" aria-live="polite"></output></form>'
        '<table id="samples"><thead><tr><th scope="col">task</th><th scope="col">backend</th>'
        '<th scope="col">subtask</th><th scope="col">sample</th><th scope="col">score</th>'
        '<th scope="col">outcome</th><th scope="col">patterns</th><th scope="col">error</th>'
        f"</tr></thead><tbody>{static}</tbody></table>"
        '<p id="more-wrap"><button type="button" id="more" hidden>show more</button></p>'
        f'<script type="application/json" id="sample-data">{data}</script>'
        f"<script>{SCRIPT}</script>"
    )


FILTERS = (
    ("task", "task"),
    ("backend", "backend"),
    ("subtask", "subtask"),
    ("outcome", "outcome"),
    ("pattern", "pattern"),
    ("error", "error"),
)


def _select(name: str, label: str) -> str:
    return f'<label>{label} <select name="{name}"><option value="">any</option></select></label>'


def _static_row(sample: JSON) -> str:
    cells = [sample["task"], sample["backend"], sample["subtask"], sample["id"]]
    cells += [_number(sample["score"]), sample["outcome"], " ".join(sample["patterns"])]
    cells.append(sample["error"] or "")
    row = "".join(f"<td>{html.escape(str(c))}</td>" for c in cells)
    body = "".join(
        f"<h4>{label}</h4><pre>{html.escape(str(sample[key]))}</pre>"
        for key, label in DETAIL_FIELDS
        if sample.get(key)
    )
    opened = f"<details><summary>open</summary>{body}</details>"
    detail = f'<tr class="detail"><td colspan="8">{opened}</td></tr>'
    return f'<tr class="sample">{row}</tr>{detail}'


DETAIL_FIELDS = (
    ("prompt", "Prompt"),
    ("output", "Raw output"),
    ("calls", "Decoded calls"),
    ("target", "Expected"),
    ("error", "Error"),
)


def _number(value: Any) -> str:
    return "" if value is None else f"{float(value):.3f}"


SCRIPT = r"""
(function () {
  const data = JSON.parse(document.getElementById('sample-data').textContent);
  const form = document.getElementById('filters');
  const body = document.querySelector('#samples tbody');
  const more = document.getElementById('more');
  const matches = document.getElementById('matches');
  const PAGE = 100;
  let shown = PAGE;
  const values = {
    task: s => [s.task], backend: s => [s.backend], subtask: s => [s.subtask],
    outcome: s => [s.outcome], pattern: s => s.patterns,
    error: s => [s.error ? 'yes' : 'no'],
  };
  for (const [name, get] of Object.entries(values)) {
    const select = form.elements[name];
    const options = [...new Set(data.flatMap(get))].filter(v => v !== '').sort();
    for (const value of options) select.add(new Option(value, value));
    if (!options.length) select.closest('label').hidden = true;
  }
  function state() {
    const out = {};
    for (const name of [...Object.keys(values), 'q']) {
      if (form.elements[name].value) out[name] = form.elements[name].value;
    }
    return out;
  }
  function keep(sample, wanted) {
    for (const [name, value] of Object.entries(wanted)) {
      if (name === 'q') { if (!sample.id.includes(value)) return false; continue; }
      if (!values[name](sample).includes(value)) return false;
    }
    return true;
  }
  function text(tag, value) {
    const node = document.createElement(tag);
    node.textContent = value == null ? '' : String(value);
    return node;
  }
  function detail(sample) {
    const cell = document.createElement('td');
    cell.colSpan = 8;
    for (const [key, label] of [['prompt', 'Prompt'], ['output', 'Raw output'],
        ['calls', 'Decoded calls'], ['target', 'Expected'], ['error', 'Error']]) {
      if (!sample[key]) continue;
      cell.append(text('h4', label), text('pre', sample[key]));
    }
    cell.append(text('h4', 'Scores'), text('pre', JSON.stringify(sample.scores, null, 1)));
    if (sample.trajectory.length) {
      cell.append(text('h4', 'Trajectory'));
      const table = document.createElement('table');
      const head = table.insertRow();
      for (const c of ['turn', 'thought', 'actions', 'observation', 'progress', 'error']) {
        const th = document.createElement('th');
        th.scope = 'col';
        th.textContent = c;
        head.append(th);
      }
      sample.trajectory.forEach((step, i) => {
        const row = table.insertRow();
        const cells = [i, step.thought, step.actions, step.observation, step.progress, step.error];
        for (const v of cells) {
          row.insertCell().textContent = v == null ? '' : String(v);
        }
      });
      cell.append(table);
    }
    const row = document.createElement('tr');
    row.className = 'detail';
    row.append(cell);
    return row;
  }
  function render() {
    const wanted = state();
    const found = data.filter(s => keep(s, wanted));
    body.replaceChildren();
    for (const sample of found.slice(0, shown)) {
      const row = body.insertRow();
      row.className = 'sample';
      row.tabIndex = 0;
      row.dataset.id = sample.id;
      for (const v of [sample.task, sample.backend, sample.subtask, sample.id,
          sample.score == null ? '' : Number(sample.score).toFixed(3), sample.outcome,
          sample.patterns.join(' '), sample.error || '']) {
        row.insertCell().textContent = v;
      }
      const toggle = () => {
        const next = row.nextSibling;
        if (next && next.className === 'detail') next.remove(); else row.after(detail(sample));
      };
      row.addEventListener('click', toggle);
      row.addEventListener('keydown', e => { if (e.key === 'Enter') toggle(); });
    }
    matches.textContent = found.length + ' of ' + data.length + ' samples match';
    more.hidden = found.length <= shown;
    const hash = new URLSearchParams(wanted).toString();
    try {
      history.replaceState(null, '', hash ? '#' + hash : location.pathname + location.search);
    } catch (e) { /* some browsers refuse it on file:// pages: the filters still work */ }
  }
  const initial = new URLSearchParams(location.hash.slice(1));
  for (const [name, value] of initial) {
    const field = form.elements[name];
    if (!field) continue;
    if (field.tagName === 'SELECT' && ![...field.options].some(o => o.value === value)) {
      field.add(new Option(value, value));
    }
    field.value = value;
  }
  form.addEventListener('input', () => { shown = PAGE; render(); });
  form.addEventListener('submit', e => e.preventDefault());
  more.addEventListener('click', () => { shown += PAGE; render(); });
  render();
  document.documentElement.dataset.ready = Math.round(performance.now());
})();
"""
