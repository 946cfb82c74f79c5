from django.urls import path

from governance import views

app_name = "review"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("projects/<id:project_id>/", views.queue, name="queue-project"),
    path("tasks/<id:task_id>/", views.task_review, name="task"),
    path("checkpoints/<id:checkpoint_id>/", views.checkpoint_review, name="checkpoint"),
]
