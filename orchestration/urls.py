from django.urls import path

from orchestration import views

app_name = "plan"

urlpatterns = [
    path("projects/<id:project_id>/upload/", views.upload, name="upload"),
    path("changesets/<id:changeset_id>/", views.changeset_page, name="changeset"),
]
