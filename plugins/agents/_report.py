"""The agents' report sections: one line per episode (success, progress, turns, how it ended)
that opens onto its trajectory, a row per turn (thought, actions, observation, progress); and
for each RPO training, its principle versions (what changed, the score of each)."""

from __future__ import annotations

import html
import json
from typing import Any

from harness import ReportSection
from harness import RunView

#: Episodes shown (the rest are in samples.jsonl).
SHOWN = 200


def sections(run: RunView) -> list[ReportSection]:
    return _episodes_section(run) + _rpo_sections(run)


def _episodes_section(run: RunView) -> list[ReportSection]:
    tasks = run.entry_ids("task", "agent") | run.entry_ids("task", "rpo")
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
    repeat = f" (repeat {record['repeat']})" if record.get("repeat") is not None else ""
    summary = (
        f"{_e(record['task'])} / {_e(record['backend'])} / {_e(record['sample_id'])}{repeat}: "
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


def _rpo_sections(run: RunView) -> list[ReportSection]:
    trainings = [
        (task, folder)
        for task in sorted(run.entry_ids("task", "rpo"))
        for folder in sorted((run.run_dir / "rpo" / task).glob("*"))
        if (folder / "v0.json").exists()
    ]
    if not trainings:
        return []
    intro = (
        "<p>Each version of the principles: the training episodes whose reflections produced "
        "it, which principles the optimizer added, rewrote or removed, the mean reward of the "
        "next batch played with it, and its validation score. Files: "
        "<code>rpo/&lt;task&gt;/&lt;backend&gt;/v&lt;k&gt;.json</code>.</p>"
    )
    body = "".join(_training(task, folder) for task, folder in trainings)
    return [ReportSection("Principle optimization (RPO)", intro + body, order=41)]


def _training(task: str, folder: Any) -> str:
    versions = _versions(folder)
    selected = _read(folder / "principles.json")
    chosen = (
        ""
        if selected is None
        else (f" Held-out episodes played with v{selected['version']} ({selected['selected_by']}).")
    )
    columns = (
        "version",
        "from episodes",
        "changed",
        "reward of its batch",
        "validation",
        "principles",
    )
    head = "<tr>" + "".join(f"<th>{c}</th>" for c in columns) + "</tr>"
    rows = "".join(_version_row(v, versions) for v in versions)
    title = f"<h3>{_e(task)} / {_e(folder.name)}</h3><p>{len(versions)} version(s).{_e(chosen)}</p>"
    return f"{title}<table>{head}{rows}</table>"


def _version_row(version: dict[str, Any], versions: list[dict[str, Any]]) -> str:
    k = int(version["version"])
    following = versions[k + 1] if k + 1 < len(versions) else {}
    batch = following.get("parent_train_reward")
    validation = version.get("validation") or {}
    shown = [f"{validation['reward']:.2f}"] if "reward" in validation else []
    if "self_judged" in validation:
        shown.append(f"self-judged {validation['self_judged']:.2f}")
    changed = version.get("changed") or {}
    change = "; ".join(f"{what}: {', '.join(names)}" for what, names in changed.items() if names)
    if (version.get("optimizer") or {}).get("error"):
        change = f"kept (optimizer: {version['optimizer']['error']})"
    principles = "<br>".join(
        f"<b>{_e(name)}</b>: {_e(text)}" for name, text in (version.get("principles") or {}).items()
    )
    cells = [
        f"v{k}",
        _e(", ".join(version.get("trained_on") or ["(initial)"])),
        _e(change or ("-" if k else "")),
        "" if batch is None else f"{batch:.2f}",
        _e(", ".join(shown)),
        principles or "(none)",
    ]
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def _versions(folder: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while (doc := _read(folder / f"v{len(found)}.json")) is not None:
        found.append(doc)
    return found


def _read(path: Any) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data
