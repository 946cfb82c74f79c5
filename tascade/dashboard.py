"""The live dashboard: server-rendered pages a signed-in human watches.

Per project: an overview, a kanban board with dependency links, the dependency graph with
its critical path, and the agents; per task, its whole timeline. Thin views: every read is
a selector (``orchestration.selectors``, ``governance.selectors``), every page is a fixed
number of queries. Pages stay live with htmx polling their own URL (``HX-Request``): the
board and the graph send the project's change stamp and get ``204 No Content`` (htmx then
swaps nothing) until an event moves it; the small pages re-render their live part.
"""

import json
from datetime import timedelta
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import escape
from django.utils.safestring import mark_safe

from governance.actors import Actor
from governance.selectors import checkpoints_waiting, review_queue
from metrics.selectors import alerts_recent
from orchestration.selectors import (
    DONE_STATES,
    agent_activity,
    project_agents,
    project_board,
    project_change_stamp,
    project_filter_choices,
    project_graph_layout,
    project_overview,
    project_visible_or_404,
    projects_visible,
    task_timeline,
)
from tascade.forms import BoardForm, GraphForm, StampForm

# How often the pages poll, in seconds (the templates read these).
POLL_SECONDS = {"overview": 3, "board": 3, "graph": 10, "task": 3, "agent": 5}

# How far back the overview lists metric alerts.
ALERTS_SHOWN_FOR = timedelta(days=1)


def dashboard_page(view):
    """Signed in, and either staff or holding a Tascade role (a group named after one).

    The signed-in user is the actor (``Actor.for_user``): a superuser is an admin, anyone
    else has the roles of their groups. Every page is read-only; any role may read.
    """

    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        actor = Actor.for_user(request.user)
        if not (request.user.is_staff or actor.roles):
            raise PermissionDenied
        return view(request, actor, *args, **kwargs)

    return wrapper


def _unchanged(request, stamp: int) -> bool:
    """A poll whose page already shows ``stamp``."""
    if not request.htmx:
        return False
    form = StampForm(request.GET)
    return form.is_valid() and form.cleaned_data["since"] == stamp


def _query_without(request, *names: str) -> str:
    query = request.GET.copy()
    for name in names:
        query.pop(name, None)
    return query.urlencode()


@dashboard_page
def projects(request, actor):
    done = Q(tasks__state__in=DONE_STATES)
    rows = projects_visible(actor).annotate(
        task_count=Count("tasks"), done_count=Count("tasks", filter=done)
    )
    return render(request, "dashboard/projects.html", {"projects": rows})


@dashboard_page
def overview(request, actor, project_id: int):
    now = timezone.now()
    context = {
        **project_overview(actor, project_id, now=now),
        "checkpoints": list(checkpoints_waiting(actor, project_id)[:50]),
        "review_waiting": review_queue(actor, project_id).count(),
        # The metric alerts of the last day (metrics/services/alerts.py), newest first.
        "alerts": [
            {**alert, "created_at": parse_datetime(alert["created_at"])}
            for alert in alerts_recent(actor, project_id, limit=5, since=now - ALERTS_SHOWN_FOR)[
                "alerts"
            ]
        ],
        "now": now,
        "poll": POLL_SECONDS["overview"],
        "page": "overview",
    }
    template = "dashboard/_overview_live.html" if request.htmx else "dashboard/overview.html"
    return render(request, template, context)


@dashboard_page
def board(request, actor, project_id: int):
    project = project_visible_or_404(actor, project_id)
    stamp = project_change_stamp(project.pk)  # before the read: a change in between shows next
    if _unchanged(request, stamp):
        return HttpResponse(status=204)
    form = BoardForm(request.GET)
    options = {}
    if form.is_valid():
        options["column"] = form.cleaned_data["column"] or None
        if form.cleaned_data["per_column"]:
            options["per_column"] = form.cleaned_data["per_column"]
    shown = project_board(actor, project.pk, form.filters(), **options)
    context = {
        **shown,
        "edges_json": json.dumps(
            [[e["prerequisite_id"], e["dependent_id"], e["unlock_on"]] for e in shown["edges"]]
        ),
        "form": form,
        "choices": project_filter_choices(project),
        "stamp": stamp,
        "query": _query_without(request, "since"),
        "base_query": _query_without(request, "since", "column", "per_column"),
        "poll": POLL_SECONDS["board"],
        "page": "board",
    }
    template = "dashboard/_board.html" if request.htmx else "dashboard/board.html"
    return render(request, template, context, status=200 if form.is_valid() else 400)


@dashboard_page
def graph(request, actor, project_id: int):
    project = project_visible_or_404(actor, project_id)
    stamp = project_change_stamp(project.pk)
    if _unchanged(request, stamp):
        return HttpResponse(status=204)
    form = GraphForm(request.GET)
    filters = form.filters()
    extra = {}
    if form.is_valid():
        if form.cleaned_data["focus"]:
            extra["focus_task_id"] = form.cleaned_data["focus"]
        if form.cleaned_data["depth"] is not None:
            extra["depth"] = form.cleaned_data["depth"]
    layout = project_graph_layout(actor, project.pk, filters, **extra)
    context = {
        **layout,
        "svg": _milestone_svg(layout) if layout["collapsed"] else _graph_svg(layout),
        "form": form,
        "choices": project_filter_choices(project),
        "stamp": stamp,
        "query": _query_without(request, "since"),
        "poll": POLL_SECONDS["graph"],
        "page": "graph",
    }
    template = "dashboard/_graph.html" if request.htmx else "dashboard/graph.html"
    return render(request, template, context, status=200 if form.is_valid() else 400)


@dashboard_page
def task_page(request, actor, task_id: int):
    context = {**task_timeline(actor, task_id, now=timezone.now()), "poll": POLL_SECONDS["task"]}
    context["project"] = context["task"].project
    template = "dashboard/_timeline.html" if request.htmx else "dashboard/task.html"
    return render(request, template, context)


@dashboard_page
def agents(request, actor, project_id: int):
    context = {**project_agents(actor, project_id, now=timezone.now()), "page": "agents"}
    return render(request, "dashboard/agents.html", context)


@dashboard_page
def agent(request, actor, project_id: int, name: str):
    now = timezone.now()
    context = {
        **agent_activity(actor, project_id, name, now=now),
        "now": now,
        "poll": POLL_SECONDS["agent"],
        "page": "agents",
    }
    template = "dashboard/_agent_live.html" if request.htmx else "dashboard/agent.html"
    return render(request, template, context)


# --- the graph, drawn as SVG ------------------------------------------------------------
# Built here rather than in a template: at a few thousand nodes and edges a template loop
# costs several times as much as string joins.
NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 150, 26, 70, 10, 20


def _position(layer: int, row: int) -> tuple[int, int]:
    return PAD + layer * (NODE_W + GAP_X), PAD + row * (NODE_H + GAP_Y)


def _link(x1: int, y1: int, x2: int, y2: int) -> str:
    bend = max(30, (x2 - x1) // 2)
    return f"M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}"


def _graph_svg(layout: dict) -> str:
    nodes = layout["nodes"]
    if not nodes:
        return ""
    at = {n["id"]: _position(n["layer"], n["row"]) for n in nodes}
    task_url = reverse("dashboard:task", args=[0]).removesuffix("0/")
    width = PAD * 2 + layout["layers"] * (NODE_W + GAP_X)
    height = PAD * 2 + layout["widest"] * (NODE_H + GAP_Y)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="dag" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" data-nodes="{len(nodes)}">'
    ]
    for edge in layout["edges"]:
        (x1, y1), (x2, y2) = at[edge["from"]], at[edge["to"]]
        css = "edge critical" if edge["critical"] else "edge"
        parts.append(
            f'<path class="{css}" data-from="{edge["from"]}" data-to="{edge["to"]}" '
            f'd="{_link(x1 + NODE_W, y1 + NODE_H // 2, x2, y2 + NODE_H // 2)}"/>'
        )
    for node in nodes:
        x, y = at[node["id"]]
        css = f"node s-{node['state']}" + (" critical" if node["critical"] else "")
        label = escape(f"{node['ref']} {node['title']}"[:24])
        parts.append(
            f'<a href="{task_url}{node["id"]}/">'
            f'<g class="{css}" data-task-id="{node["id"]}">'
            f"<title>{escape(node['ref'])} {escape(node['title'])} ({node['state']})</title>"
            f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="4"/>'
            f'<text x="{x + 6}" y="{y + 17}">{label}</text></g></a>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))


def _milestone_svg(layout: dict) -> str:
    nodes = layout["milestone_nodes"]
    at = {n["id"]: _position(n["layer"], n["row"] * 2) for n in nodes}
    layers = 1 + max((n["layer"] for n in nodes), default=0)
    rows = 1 + max((n["row"] for n in nodes), default=0)
    width = PAD * 2 + layers * (NODE_W + GAP_X)
    height = PAD * 2 + rows * 2 * (NODE_H + GAP_Y)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="dag" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" data-milestones="{len(nodes)}">'
    ]
    for edge in layout["milestone_edges"]:
        (x1, y1), (x2, y2) = at[edge["from"]], at[edge["to"]]
        parts.append(
            f'<path class="edge" d="{_link(x1 + NODE_W, y1 + NODE_H, x2, y2 + NODE_H)}">'
            f"<title>{edge['count']} dependencies</title></path>"
        )
    for node in nodes:
        x, y = at[node["id"]]
        css = "node milestone" + (" critical" if node["critical"] else "")
        href = f"?milestone={node['id']}" if node["id"] else "?"
        parts.append(
            f'<a href="{href}"><g class="{css}" data-milestone-id="{node["id"] or ""}">'
            f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H * 2}" rx="4"/>'
            f'<text x="{x + 6}" y="{y + 17}">{escape(node["name"][:22])}</text>'
            f'<text x="{x + 6}" y="{y + 38}">{node["done"]}/{node["tasks"]} done</text></g></a>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))
