"""Orchestration's domain errors. Each ``code`` is stable: agents branch on it."""

from tascade.errors import DomainError


class InvalidTransition(DomainError):
    code = "INVALID_TRANSITION"
    default_message = "The task's state does not allow this."


class DependenciesUnmet(DomainError):
    code = "DEPENDENCIES_UNMET"
    default_message = "Not every prerequisite has reached the level this task needs."


class TaskNotClaimable(DomainError):
    code = "TASK_NOT_CLAIMABLE"
    default_message = "The task is not ready to be claimed."


class TaskAlreadyClaimed(DomainError):
    code = "TASK_ALREADY_CLAIMED"
    default_message = "Another lease holds this task."


class TaskReserved(DomainError):
    code = "TASK_RESERVED"
    default_message = "The task is reserved for another agent."


class LeaseStale(DomainError):
    code = "LEASE_STALE"
    default_message = "This lease token is not the task's live lease for you."


class LeaseExpired(DomainError):
    code = "LEASE_EXPIRED"
    default_message = "The lease expired; claim the task again if it is still available."


class ArtifactRequired(DomainError):
    code = "ARTIFACT_REQUIRED"
    default_message = "Publish at least one artifact under the current lease first."


class DependencyCycle(DomainError):
    code = "DEPENDENCY_CYCLE"
    default_message = "The edge would close a cycle in the dependency graph."


class DependencyExists(DomainError):
    code = "DEPENDENCY_EXISTS"
    default_message = "This edge exists already."


class OverrideNotAllowed(DomainError):
    code = "OVERRIDE_NOT_ALLOWED"
    default_message = "An override cannot move the task there."


class ApprovalRequired(DomainError):
    code = "APPROVAL_REQUIRED"
    default_message = (
        "The current implementation needs an approving review by someone other than its "
        "implementer first."
    )


class IntegrationQueued(DomainError):
    code = "INTEGRATION_ALREADY_QUEUED"
    default_message = "The task already waits in (or runs in) the integration queue."


class IntegrationNotRunning(DomainError):
    code = "INTEGRATION_NOT_RUNNING"
    default_message = "Only a running integration attempt, by the one who took it, takes a result."


class PlanVersionStale(DomainError):
    code = "PLAN_VERSION_STALE"
    default_message = (
        "The plan moved since this changeset was made: review it against the current "
        "version, or apply it with rebase if it still validates."
    )


class ChangesetApplied(DomainError):
    code = "CHANGESET_ALREADY_APPLIED"
    default_message = "This changeset has been applied already; it cannot be applied again."


class WebhookInactive(DomainError):
    code = "WEBHOOK_INACTIVE"
    default_message = "The webhook subscription is deactivated; activate it first."


class WebhookDeliveryInFlight(DomainError):
    code = "WEBHOOK_DELIVERY_IN_FLIGHT"
    default_message = "The delivery is being sent right now; wait for its outcome."


class PathsHeld(DomainError):
    code = "PATHS_HELD"
    default_message = (
        "Work in flight holds paths this task needs, or needs to itself, exclusively: it is "
        "not offered until that work is integrated or returned."
    )
