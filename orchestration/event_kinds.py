"""The catalogue of event kinds: what a webhook subscription may ask for by name.

Every kind a service writes is listed here (a test reads the source and fails on a kind
that is missing), so a subscription naming an unknown kind is refused instead of silently
never matching. A new kind (a metric alert, say) is one line added below; subscriptions with
an empty filter, or a ``family.*`` pattern of its family, receive it with no other change.
"""

import fnmatch

EVENT_KINDS: frozenset[str] = frozenset(
    {
        "artifact.published",
        "changeset.applied",
        "changeset.created",
        "checkpoint.created",
        "checkpoint.decided",
        "checkpoint.sla_breached",
        "dependency.added",
        "dependency.removed",
        "gate_rule.created",
        "gate_rule.updated",
        "integration.cancelled",
        "integration.queued",
        "integration.started",
        "lease.expired",
        "lease.revoked",
        "metric.alert",
        "path_overlap.detected",
        "milestone.created",
        "phase.created",
        "project.created",
        "reservation.expired",
        "reservation.released",
        "review.recorded",
        "task.abandoned",
        "task.assigned",
        "task.blocked",
        "task.cancelled",
        "task.changes_requested",
        "task.checks_failed",
        "task.claimed",
        "task.conflict",
        "task.created",
        "task.delegated",
        "task.delegation_followed",
        "task.fell_back",
        "task.implemented",
        "task.integrated",
        "task.overridden",
        "task.ready",
        "task.rejected",
        "task.released",
        "task.started",
        "task.unassigned",
        "task.unblocked",
        "webhook.created",
        "webhook.updated",
        "webhook.redelivery_requested",
    }
)

EVENT_FAMILIES: frozenset[str] = frozenset(kind.split(".", 1)[0] for kind in EVENT_KINDS)


def kind_pattern_is_known(pattern: str) -> bool:
    """An exact kind of the catalogue, or ``family.*`` for a family of it."""
    if pattern.endswith(".*"):
        return pattern[:-2] in EVENT_FAMILIES
    return pattern in EVENT_KINDS


def kind_matches(patterns: list[str], kind: str) -> bool:
    """Whether an event of ``kind`` passes a subscription's filter (empty: every kind)."""
    return not patterns or any(fnmatch.fnmatchcase(kind, pattern) for pattern in patterns)
