"""The agents' report section: one line per episode (success, progress, turns, how it ended)
that opens onto its trajectory, a row per turn (thought, actions, observation, progress)."""

from __future__ import annotations

import html
import json
from typing import Any

from harness import ReportSection
from harness import RunView

#: Episodes shown (the rest are in samples.jsonl).
SHOWN = 200


def sections(run: RunView) -> list[ReportSection]:
    tasks = run.entry_ids("task", "agent")
    if not tasks:
        return []
    episodes = [r for r in run.records() if r["task"] in tasks and "trajectory" in r]
    if not episodes:
        return []
    parts = [_episode(r) for r in episodes[:SHOWN]]
    more = len(episodes) - SHOWN
    if more > 0:
        parts.append(f"<p>{more} more episode(s) in samples.jsonl.</p>")
    intro = (
        "<p>Each episode: whether the goal was reached, the progress rate (the best fraction "
        "of subgoals met), the model turns and how it ended. Open one for its trajectory.</p>"
    )
    return [ReportSection("Agent episodes", intro + "".join(parts), order=40)]


def _episode(record: dict[str, Any]) -> str:
    scores = record.get("scores") or {}
    mark = "reached" if scores.get("success") else "not reached"
    summary = (
        f"{_e(record['task'])} / {_e(record['backend'])} / {_e(record['sample_id'])}: "
        f"goal {mark}, progress {float(scores.get('progress', 0)):.2f}, "
        f"{len(record['trajectory'])} turn(s), ended by {_e(record.get('ended_by'))}"
    )
    if record.get("error"):
        summary += f", error: {_e(record['error'])}"
    rows = "".join(_turn(step) for step in record["trajectory"])
    columns = ("turn", "thought", "actions", "observation", "progress", "valid", "error")
    head = "<tr>" + "".join(f"<th>{c}</th>" for c in columns) + "</tr>"
    plan = (record.get("agent_notes") or {}).get("plan")
    notes = f"<p><b>Goal</b>: {_e(record.get('goal') or '')}</p>"
    notes += f"<p><b>Plan</b>: {_e(plan)}</p>" if plan else ""
    return f"<details><summary>{summary}</summary>{notes}<table>{head}{rows}</table></details>"


def _turn(step: dict[str, Any]) -> str:
    actions = step.get("actions")
    if actions is None:
        shown = f"format error: {step.get('parse_error')}"
    else:
        shown = json.dumps(actions) if actions else "(answer in words, no call)"
    cells = [
        step.get("step"),
        step.get("thought") or "",
        shown,
        (step.get("observation") or "")[:400],
        f"{float(step.get('progress') or 0):.2f}",
        "yes" if step.get("valid", True) else "no",
        step.get("error") or "",
    ]
    return "<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>"


def _e(value: Any) -> str:
    return html.escape(str(value))
