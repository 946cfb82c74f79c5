from django.urls import path

from metrics import views

app_name = "metrics"

urlpatterns = [
    path("projects/<id:project_id>/", views.project_metrics, name="project"),
    path(
        "projects/<id:project_id>/export/<slug:figure>.csv",
        views.export_csv,
        name="export",
    ),
]
