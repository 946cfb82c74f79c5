from django.urls import path
from django.views.generic import RedirectView

from tascade import dashboard

app_name = "dashboard"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="dashboard:projects"), name="home"),
    path("projects/", dashboard.projects, name="projects"),
    path("projects/<id:project_id>/", dashboard.overview, name="overview"),
    path("projects/<id:project_id>/board/", dashboard.board, name="board"),
    path("projects/<id:project_id>/graph/", dashboard.graph, name="graph"),
    path("projects/<id:project_id>/agents/", dashboard.agents, name="agents"),
    path("projects/<id:project_id>/agents/<str:name>/", dashboard.agent, name="agent"),
    path("tasks/<id:task_id>/", dashboard.task_page, name="task"),
]
