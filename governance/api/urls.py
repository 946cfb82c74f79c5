from django.urls import path

from governance.api import views as v

urlpatterns = [
    path("me/", v.WhoAmI.as_view(), name="whoami"),
    path("api-keys/", v.ApiKeyListCreate.as_view(), name="api-key-list"),
    path("api-keys/<id:pk>/revoke/", v.ApiKeyRevoke.as_view(), name="api-key-revoke"),
    path("tasks/<id:pk>/reviews/", v.TaskReviews.as_view(), name="task-reviews"),
    path("projects/<id:project_id>/reviews/", v.ProjectReviews.as_view(), name="review-list"),
    path("projects/<id:project_id>/review-queue/", v.ReviewQueue.as_view(), name="review-queue"),
    path("reviews/<id:pk>/", v.ReviewDetail.as_view(), name="review-detail"),
    path(
        "projects/<id:project_id>/gate-rules/",
        v.GateRuleListCreate.as_view(),
        name="gate-rule-list",
    ),
    path(
        "projects/<id:project_id>/checkpoints/", v.CheckpointList.as_view(), name="checkpoint-list"
    ),
    path("gate-rules/<id:pk>/", v.GateRuleDetail.as_view(), name="gate-rule-detail"),
    path("checkpoints/<id:pk>/", v.CheckpointDetail.as_view(), name="checkpoint-detail"),
    path("checkpoints/<id:pk>/decision/", v.CheckpointDecide.as_view(), name="checkpoint-decide"),
]
