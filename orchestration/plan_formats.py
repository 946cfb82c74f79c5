"""Plan documents a planner uploads, turned into changeset operations.

Three forms, all reaching the same ``changeset_create``:

- JSON or YAML: a list of operations, ``{"operations": [...]}``, or an outline
  ``{"phases": [{"name", "milestones": [{"name", "tasks": [{"title", "key", "after", ...}]}]}]}``.
- A Markdown outline: ``#`` a phase, ``##`` a milestone, ``- `` a task. A task may name
  itself ``{key}``, its prerequisites ``(after: key, T3)``, the paths it expects to touch
  ``(paths: docs/**, api.py)`` and those it needs to itself ``(exclusive: */migrations/*)``;
  indented lines under it are its description.

A malformed document raises ``PlanDocumentError`` with the line or item at fault.
"""

import json
import re
from typing import Any

import yaml
from django.utils.text import slugify

from tascade.errors import InvalidInput


class PlanDocumentError(InvalidInput):
    code = "PLAN_DOCUMENT_INVALID"
    default_message = "The plan document could not be read."


_TASK_FIELDS = (
    "description",
    "work_spec",
    "task_class",
    "priority",
    "capability_tags",
    "expected_paths",
    "exclusive_paths",
    "max_attempts",
)


def _ref(name: str) -> str | int:
    """``T7`` and ids stay references to existing tasks; other names are this document's."""
    if isinstance(name, int) or re.fullmatch(r"T[0-9]+", str(name)):
        return name
    return f"new:{name}"


def outline_operations(outline: dict) -> list[dict]:
    """Turn a phases > milestones > tasks outline into operations, dependencies last."""
    phases = outline.get("phases")
    if not isinstance(phases, list):
        raise PlanDocumentError("An outline needs a list of phases.", where="phases")
    operations: list[dict] = []
    edges: list[dict] = []
    for p, phase in enumerate(phases):
        if not isinstance(phase, dict) or not isinstance(phase.get("name"), str):
            raise PlanDocumentError("Every phase needs a name.", where=f"phases[{p}]")
        phase_key = f"new:phase-{p}"
        operations.append(
            {"op": "add_phase", "key": phase_key, "name": phase["name"], "position": p}
        )
        for m, milestone in enumerate(phase.get("milestones") or []):
            where = f"phases[{p}].milestones[{m}]"
            if not isinstance(milestone, dict) or not isinstance(milestone.get("name"), str):
                raise PlanDocumentError("Every milestone needs a name.", where=where)
            milestone_key = f"new:milestone-{p}-{m}"
            operations.append(
                {
                    "op": "add_milestone",
                    "key": milestone_key,
                    "phase": phase_key,
                    "name": milestone["name"],
                    "position": m,
                }
            )
            for t, task in enumerate(milestone.get("tasks") or []):
                task_where = f"{where}.tasks[{t}]"
                if not isinstance(task, dict) or not isinstance(task.get("title"), str):
                    raise PlanDocumentError("Every task needs a title.", where=task_where)
                key = str(task.get("key") or slugify(task["title"]) or f"task-{p}-{m}-{t}")
                operations.append(
                    {
                        "op": "add_task",
                        "key": f"new:{key}",
                        "title": task["title"],
                        "milestone": milestone_key,
                        **{name: task[name] for name in _TASK_FIELDS if name in task},
                    }
                )
                after = task.get("after") or []
                if not isinstance(after, list):
                    raise PlanDocumentError("'after' is a list.", where=task_where)
                edges += [
                    {
                        "op": "add_dependency",
                        "prerequisite": _ref(before),
                        "dependent": f"new:{key}",
                    }
                    for before in after
                ]
    return operations + edges


def structured_operations(document: Any) -> list[dict]:
    if isinstance(document, list):
        return document
    if isinstance(document, dict) and "operations" in document:
        return document["operations"]
    if isinstance(document, dict) and "phases" in document:
        return outline_operations(document)
    raise PlanDocumentError(
        'Expected a list of operations, {"operations": [...]} or {"phases": [...]}.'
    )


_HEADING = re.compile(r"^(#{1,2})\s+(?:(?:phase|milestone):\s*)?(.+?)\s*$", re.IGNORECASE)
_TASK = re.compile(r"^[-*]\s+(.+?)\s*$")
_KEY = re.compile(r"\{([\w.-]+)\}")
_AFTER = re.compile(r"\(after:\s*([^)]*)\)", re.IGNORECASE)
# (paths: a, b) and (exclusive: c): the task's expected_paths and exclusive_paths.
_PATHS = re.compile(r"\((paths|exclusive):\s*([^)]*)\)", re.IGNORECASE)
_PATH_FIELD = {"paths": "expected_paths", "exclusive": "exclusive_paths"}


def markdown_outline(text: str) -> dict:
    """Read a Markdown outline into the same outline shape JSON and YAML use."""
    phases: list[dict] = []
    current_task: dict | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        if not line.strip():
            continue
        heading = _HEADING.match(line)
        if heading:
            current_task = None
            level, name = len(heading.group(1)), heading.group(2)
            if level == 1:
                phases.append({"name": name, "milestones": []})
            else:
                if not phases:
                    raise PlanDocumentError(
                        "A milestone (##) needs a phase (#) above it.", line=number
                    )
                phases[-1]["milestones"].append({"name": name, "tasks": []})
            continue
        task = _TASK.match(line)
        if task and not raw.startswith((" ", "\t")):
            if not phases or not phases[-1]["milestones"]:
                raise PlanDocumentError("A task (-) needs a milestone (##) above it.", line=number)
            title = task.group(1)
            key = _KEY.search(title)
            after = _AFTER.search(title)
            paths = _PATHS.findall(title)
            title = _PATHS.sub("", _AFTER.sub("", _KEY.sub("", title))).strip()
            if not title:
                raise PlanDocumentError("A task needs a title.", line=number)
            current_task = {"title": title}
            if key:
                current_task["key"] = key.group(1)
            if after:
                current_task["after"] = [a.strip() for a in after.group(1).split(",") if a.strip()]
            for kind, listed in paths:
                name = _PATH_FIELD[kind.lower()]
                current_task.setdefault(name, []).extend(
                    p.strip() for p in listed.split(",") if p.strip()
                )
            phases[-1]["milestones"][-1]["tasks"].append(current_task)
            continue
        if current_task is not None and raw.startswith((" ", "\t")):
            description = current_task.get("description", "")
            current_task["description"] = (description + "\n" + line.strip()).strip()
            continue
        raise PlanDocumentError(
            f"Line {number} is not a heading, a task or a description.", line=number
        )
    if not phases:
        raise PlanDocumentError("The outline has no phase (a line starting with #).")
    return {"phases": phases}


def parse_plan_document(name: str, content: bytes) -> list[dict]:
    """Operations from an uploaded file, by its extension (.json, .yaml/.yml, .md)."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise PlanDocumentError("The file is not UTF-8 text.") from None
    lowered = name.lower()
    try:
        if lowered.endswith(".json"):
            return structured_operations(json.loads(text))
        if lowered.endswith((".yaml", ".yml")):
            return structured_operations(yaml.safe_load(text))
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise PlanDocumentError(f"The file does not parse: {exc}") from None
    if lowered.endswith((".md", ".markdown")):
        return outline_operations(markdown_outline(text))
    raise PlanDocumentError("Upload a .json, .yaml, .yml or .md file.")
