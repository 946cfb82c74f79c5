from django.urls import path

from orchestration.api import views as v

P = "projects/<id:project_id>/"
T = "tasks/<id:pk>/"

urlpatterns = [
    path("projects/", v.ProjectListCreate.as_view(), name="project-list"),
    path(P, v.ProjectDetail.as_view(), name="project-detail"),
    path(P + "phases/", v.PhaseListCreate.as_view(), name="phase-list"),
    path(P + "milestones/", v.MilestoneListCreate.as_view(), name="milestone-list"),
    path(P + "tasks/", v.TaskListCreate.as_view(), name="task-list"),
    path(P + "ready/", v.ReadyList.as_view(), name="ready-list"),
    path(P + "claim-next/", v.ClaimNext.as_view(), name="claim-next"),
    path(P + "dependencies/", v.DependencyListCreate.as_view(), name="dependency-list"),
    path(P + "leases/", v.LeaseList.as_view(), name="lease-list"),
    path(P + "reservations/", v.ReservationList.as_view(), name="reservation-list"),
    path(P + "artifacts/", v.ArtifactList.as_view(), name="artifact-list"),
    path(P + "snapshots/", v.SnapshotList.as_view(), name="snapshot-list"),
    path(P + "graph/", v.ProjectGraph.as_view(), name="project-graph"),
    path(P + "events/", v.EventList.as_view(), name="event-list"),
    path(P + "integration-attempts/", v.IntegrationAttemptList.as_view(), name="integration-list"),
    path(
        P + "integration-attempts/take-next/",
        v.IntegrationTakeNext.as_view(),
        name="integration-take-next",
    ),
    path(
        "integration-attempts/<id:pk>/",
        v.IntegrationAttemptDetail.as_view(),
        name="integration-detail",
    ),
    path(
        "integration-attempts/<id:pk>/result/",
        v.IntegrationResult.as_view(),
        name="integration-result",
    ),
    path(T + "integration/", v.TaskIntegrationEnqueue.as_view(), name="task-integration"),
    path("phases/<id:pk>/", v.PhaseDetail.as_view(), name="phase-detail"),
    path("milestones/<id:pk>/", v.MilestoneDetail.as_view(), name="milestone-detail"),
    path("dependencies/<id:pk>/", v.DependencyDetail.as_view(), name="dependency-detail"),
    path("leases/<id:pk>/", v.LeaseDetail.as_view(), name="lease-detail"),
    path("reservations/<id:pk>/", v.ReservationDetail.as_view(), name="reservation-detail"),
    path("artifacts/<id:pk>/", v.ArtifactDetail.as_view(), name="artifact-detail"),
    path("snapshots/<id:pk>/", v.SnapshotDetail.as_view(), name="snapshot-detail"),
    path(T, v.TaskDetail.as_view(), name="task-detail"),
    path(T + "context/", v.TaskContext.as_view(), name="task-context"),
    path(T + "snapshot/", v.TaskSnapshot.as_view(), name="task-snapshot"),
    path(T + "artifacts/", v.TaskArtifacts.as_view(), name="task-artifacts"),
    path(T + "claim/", v.TaskClaim.as_view(), name="task-claim"),
    path(T + "start/", v.TaskStart.as_view(), name="task-start"),
    path(T + "heartbeat/", v.TaskHeartbeat.as_view(), name="task-heartbeat"),
    path(T + "release/", v.TaskRelease.as_view(), name="task-release"),
    path(T + "implemented/", v.TaskImplemented.as_view(), name="task-implemented"),
    path(T + "assign/", v.TaskAssign.as_view(), name="task-assign"),
    path(T + "unassign/", v.TaskUnassign.as_view(), name="task-unassign"),
    path(T + "block/", v.TaskBlock.as_view(), name="task-block"),
    path(T + "unblock/", v.TaskUnblock.as_view(), name="task-unblock"),
    path(T + "cancel/", v.TaskCancel.as_view(), name="task-cancel"),
    path(T + "abandon/", v.TaskAbandon.as_view(), name="task-abandon"),
    path(T + "override/", v.TaskOverride.as_view(), name="task-override"),
]
