"""The project's three environments, small and deterministic (AgentBoard's kinds):

- ``todo``, tool operation: a todo list in memory (list, add, complete, delete, rename);
  subgoals are facts about the final list;
- ``blocks``, planning: blocks world, one move at a time; subgoals are the goal's ``on``
  facts (PDDL-style progress: the fraction that hold);
- ``academia``, tool query: a small graph of authors and papers the project ships; subgoals
  are the lookups the question needs and the right answer given with ``finish``.
"""

from __future__ import annotations

import json
from typing import Any

from ._base import JSON
from ._base import Refused
from ._base import ToolEnvironment

STRING = {"type": "string"}
INTEGER = {"type": "integer"}


def _schema(required: list[str], **properties: JSON) -> JSON:
    return {"type": "object", "properties": properties, "required": required}


def _same(a: Any, b: Any) -> bool:
    return str(a).strip().casefold() == str(b).strip().casefold()


class TodoList(ToolEnvironment):
    """A todo list in memory; goals ask for tasks added, completed, renamed or deleted."""

    DATA = "todo.json"
    TOOLS = {
        "list_tasks": {
            "description": "List the tasks (id, title, project, done), optionally of one project.",
            "parameters": _schema([], project=STRING),
        },
        "add_task": {
            "description": "Add a task; returns its id.",
            "parameters": _schema(["title"], title=STRING, project=STRING),
        },
        "complete_task": {
            "description": "Mark a task done by id.",
            "parameters": _schema(["task_id"], task_id=INTEGER),
        },
        "delete_task": {
            "description": "Delete a task by id.",
            "parameters": _schema(["task_id"], task_id=INTEGER),
        },
        "rename_task": {
            "description": "Give a task a new title by id.",
            "parameters": _schema(["task_id", "title"], task_id=INTEGER, title=STRING),
        },
    }

    def start(self, episode: JSON) -> str:
        self.tasks = {int(t["id"]): dict(t, done=bool(t.get("done"))) for t in episode["tasks"]}
        self.next_id = max(self.tasks, default=0) + 1
        return f"The todo list has {len(self.tasks)} task(s). Use list_tasks to see them."

    def tool_list_tasks(self, project: str | None = None) -> str:
        rows = [
            t for t in self.tasks.values() if project is None or _same(t.get("project"), project)
        ]
        return json.dumps(rows) if rows else "[]"

    def tool_add_task(self, title: str, project: str | None = None) -> str:
        task_id, self.next_id = self.next_id, self.next_id + 1
        self.tasks[task_id] = {"id": task_id, "title": title, "project": project, "done": False}
        return f"added task {task_id}"

    def _task(self, task_id: int) -> JSON:
        if task_id not in self.tasks:
            raise Refused(f"no task {task_id}; list_tasks shows the ids")
        return self.tasks[task_id]

    def tool_complete_task(self, task_id: int) -> str:
        task = self._task(task_id)
        if task["done"]:
            raise Refused(f"task {task_id} is already done")
        task["done"] = True
        return f"task {task_id} done"

    def tool_delete_task(self, task_id: int) -> str:
        self._task(task_id)
        del self.tasks[task_id]
        return f"task {task_id} deleted"

    def tool_rename_task(self, task_id: int, title: str) -> str:
        self._task(task_id)["title"] = title
        return f"task {task_id} renamed"

    def met(self) -> tuple[int, int]:
        goals = self.episode["subgoals"]
        return sum(self._holds(g) for g in goals), len(goals)

    def _holds(self, goal: JSON) -> bool:
        """``{"has": {title, project?, done?}}`` or ``{"lacks": {title}}``."""
        if "lacks" in goal:
            return not any(_same(t["title"], goal["lacks"]["title"]) for t in self.tasks.values())
        want = goal["has"]
        return any(
            all(_same(t.get(k), v) if k != "done" else t["done"] == v for k, v in want.items())
            for t in self.tasks.values()
        )


class BlocksWorld(ToolEnvironment):
    """Blocks on a table; move a clear block onto the table or onto another clear block."""

    DATA = "blocks.json"
    TOOLS = {
        "look": {
            "description": "Describe which block is on what.",
            "parameters": _schema([]),
        },
        "move": {
            "description": "Move a clear block (nothing on it) onto the table or a clear block.",
            "parameters": _schema(["block", "destination"], block=STRING, destination=STRING),
        },
    }

    def start(self, episode: JSON) -> str:
        self.on = {str(k).upper(): str(v).upper() for k, v in episode["start"].items()}
        return self.tool_look()

    def tool_look(self) -> str:
        return "; ".join(
            f"{b} is on {'the table' if s == 'TABLE' else s}" for b, s in sorted(self.on.items())
        )

    def _clear(self, block: str) -> bool:
        return block not in self.on.values()

    def tool_move(self, block: str, destination: str) -> str:
        block, target = block.strip().upper(), destination.strip().upper()
        target = "TABLE" if target in ("TABLE", "THE TABLE") else target
        if block not in self.on:
            raise Refused(f"there is no block {block}; the blocks are {', '.join(sorted(self.on))}")
        if target != "TABLE" and target not in self.on:
            raise Refused(f"there is no block {target}")
        if block == target or self.on[block] == target:
            raise Refused(f"{block} is already there")
        for name in (block, target):
            if name != "TABLE" and not self._clear(name):
                raise Refused(f"{name} is not clear: something is on it")
        self.on[block] = target
        return self.tool_look()

    def met(self) -> tuple[int, int]:
        goal = {str(k).upper(): str(v).upper() for k, v in self.episode["goal_on"].items()}
        return sum(self.on.get(b) == s for b, s in goal.items()), len(goal)


class Academia(ToolEnvironment):
    """A small graph of authors and papers; questions need lookups, then ``finish``."""

    DATA = "academia.json"
    TOOLS = {
        "search_author": {
            "description": "An author's affiliation and paper titles.",
            "parameters": _schema(["name"], name=STRING),
        },
        "search_paper": {
            "description": "A paper's year, venue, authors and the titles it cites.",
            "parameters": _schema(["title"], title=STRING),
        },
        "finish": {
            "description": "Give the final answer to the question.",
            "parameters": _schema(["answer"], answer=STRING),
        },
    }

    def start(self, episode: JSON) -> str:
        self.looked: set[tuple[str, str]] = set()
        self.answer: str | None = None
        graph = self.data["graph"]
        return f"The graph holds {len(graph['authors'])} authors and {len(graph['papers'])} papers."

    def tool_search_author(self, name: str) -> str:
        author = next((a for a in self.data["graph"]["authors"] if _same(a["name"], name)), None)
        if author is None:
            return "no author of that name"
        self.looked.add(("search_author", author["name"].casefold()))
        papers = [
            p["title"] for p in self.data["graph"]["papers"] if author["name"] in p["authors"]
        ]
        return json.dumps(
            {"name": author["name"], "affiliation": author["affiliation"], "papers": papers}
        )

    def tool_search_paper(self, title: str) -> str:
        paper = next((p for p in self.data["graph"]["papers"] if _same(p["title"], title)), None)
        if paper is None:
            return "no paper of that title"
        self.looked.add(("search_paper", paper["title"].casefold()))
        return json.dumps(paper)

    def tool_finish(self, answer: str) -> str:
        if self.answer is not None:
            raise Refused("the answer was already given")
        self.answer = answer
        return "answer recorded"

    def met(self) -> tuple[int, int]:
        needs = [(kind, key.casefold()) for kind, key in self.episode["lookups"]]
        right = self.answer is not None and _same(self.answer, self.episode["answer"])
        return sum(n in self.looked for n in needs) + right, len(needs) + 1

    def succeeded(self, met: int, total: int) -> bool:
        """The right answer (AgentBoard's success on tool queries); lookups are progress."""
        return self.answer is not None and _same(self.answer, self.episode["answer"])

    def finished(self) -> bool:
        return self.answer is not None
