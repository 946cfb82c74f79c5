"""The metrics page (signed-in staff, like the review pages) and its CSV exports. Thin: the
figures come from ``metrics.tables``, which reads through the selectors."""

import csv

from django.contrib.admin.views.decorators import staff_member_required
from django.http import Http404, HttpResponse
from django.shortcuts import render

from governance.actors import Actor
from metrics.tables import tables
from orchestration.selectors import project_visible_or_404
from tascade.errors import NotFound


def _project(request, project_id):
    actor = Actor.for_user(request.user)
    try:
        return actor, project_visible_or_404(actor, project_id)
    except NotFound:
        raise Http404("No such project.") from None


@staff_member_required
def project_metrics(request, project_id: int):
    actor, project = _project(request, project_id)
    figures, summary, forecast = tables(actor, project.pk)
    return render(
        request,
        "metrics/project.html",
        {
            "project": project,
            "tables": list(figures.values()),
            "charts": {t.name: t.chart_config() for t in figures.values() if t.chart},
            "summary": summary,
            "forecast": forecast,
        },
    )


@staff_member_required
def export_csv(request, project_id: int, figure: str):
    actor, project = _project(request, project_id)
    figures, _, _ = tables(actor, project.pk)
    table = figures.get(figure)
    if table is None:
        raise Http404("No such figure.")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{project.slug}-{figure}.csv"'
    writer = csv.writer(response)
    writer.writerow(table.header)
    writer.writerows(["" if v is None else v for v in row] for row in table.rows)
    return response
