"""Gates: rules that batch implemented work into checkpoints, and the decisions settling them.

Evaluation is idempotent by construction, in the database: a checkpoint is unique per
(rule, occurrence) and an implementation of a task is a candidate at most once per rule, so
evaluating again, or concurrently, or after a checkpoint was closed, never makes a second one
for the same work. Reworked code is a new implementation and is gated again.
"""

import fnmatch
import hashlib
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django_fsm import can_proceed

from governance.actors import Actor, Role
from governance.errors import GateNotPassable, SelfReview
from governance.models import (
    Checkpoint,
    CheckpointCandidate,
    GateDecision,
    GateRule,
    GateVerdict,
    Review,
    Trigger,
    Verdict,
)
from governance.selectors import RISKY_CLASSES
from governance.services.reviews import review_apply
from orchestration.errors import InvalidTransition
from orchestration.locks import lock_tasks
from orchestration.models import GATE_CLASSES, Artifact, Milestone, Phase, Task, TaskState
from orchestration.selectors import object_visible_or_404, project_visible_or_404
from orchestration.services import plan
from orchestration.services.events import event_record
from orchestration.services.lifecycle import transition_apply, utcnow
from orchestration.services.plan import in_project
from tascade.errors import InvalidInput
from tascade.transactions import retry_on_conflict

S = TaskState
PASSING = (GateVerdict.APPROVED, GateVerdict.APPROVED_WITH_RISK)


@retry_on_conflict
def gate_rule_create(
    *,
    actor: Actor,
    project_id: int,
    name: str,
    trigger: str,
    phase_id: int | None = None,
    milestone_id: int | None = None,
    gate_class: str = "review_gate",
    threshold: int = 1,
    protected_paths: list[str] | None = None,
    sla_hours: int = 24,
) -> GateRule:
    actor.require(Role.PLANNER)
    project = project_visible_or_404(actor, project_id)
    if trigger not in Trigger.values:
        raise InvalidInput("Unknown trigger.", fields={"trigger": [", ".join(Trigger.values)]})
    if trigger == Trigger.PROTECTED_PATHS and not protected_paths:
        raise InvalidInput(
            "A protected-paths rule needs paths.",
            fields={"protected_paths": ["At least one glob, e.g. */migrations/*."]},
        )
    phase = in_project(Phase, phase_id, project, "phase")
    milestone = in_project(Milestone, milestone_id, project, "milestone")
    if phase and milestone and milestone.phase_id != phase.pk:
        raise InvalidInput(
            "The milestone is not in that phase.",
            fields={"milestone": [f"Milestone {milestone.pk} is not in phase {phase.pk}."]},
        )
    rule = GateRule.objects.create(
        project=project,
        phase=phase,
        milestone=milestone,
        name=name,
        trigger=trigger,
        gate_class=gate_class,
        threshold=threshold,
        protected_paths=protected_paths or [],
        sla_hours=sla_hours,
        created_by=actor.name,
    )
    event_record(
        project=project,
        kind="gate_rule.created",
        actor=actor.name,
        rule_id=rule.pk,
        name=name,
        trigger=trigger,
    )
    return rule


@retry_on_conflict
def gate_rule_update(
    *,
    actor: Actor,
    rule_id: int,
    enabled: bool | None = None,
    threshold: int | None = None,
    sla_hours: int | None = None,
    protected_paths: list[str] | None = None,
) -> GateRule:
    """Pause, resume or re-tune a rule. Checkpoints it already made are left as they are."""
    actor.require(Role.PLANNER)
    rule = object_visible_or_404(GateRule, actor, rule_id)
    changes = {
        name: value
        for name, value in {
            "enabled": enabled,
            "threshold": threshold,
            "sla_hours": sla_hours,
            "protected_paths": protected_paths,
        }.items()
        if value is not None
    }
    if rule.trigger == Trigger.PROTECTED_PATHS and changes.get("protected_paths") == []:
        raise InvalidInput(
            "A protected-paths rule needs paths.",
            fields={"protected_paths": ["At least one glob."]},
        )
    with transaction.atomic():
        rule = GateRule.objects.select_for_update().get(pk=rule.pk)
        for name, value in changes.items():
            setattr(rule, name, value)
        rule.save(update_fields=list(changes) or None)
        event_record(
            project=rule.project_id,
            kind="gate_rule.updated",
            actor=actor.name,
            rule_id=rule.pk,
            **{k: v for k, v in changes.items()},
        )
    return rule


# --- evaluation ------------------------------------------------------------------------------
def _in_scope(rule: GateRule) -> QuerySet[Task]:
    tasks = Task.objects.filter(project_id=rule.project_id).exclude(task_class__in=GATE_CLASSES)
    if rule.milestone_id:
        tasks = tasks.filter(milestone_id=rule.milestone_id)
    elif rule.phase_id:
        tasks = tasks.filter(milestone__phase_id=rule.phase_id)
    return tasks


def _awaiting(rule: GateRule) -> QuerySet[Task]:
    """Implemented, not yet approved, and this implementation not yet a candidate of the rule."""
    approved = Review.objects.filter(
        task=OuterRef("pk"),
        implementation=OuterRef("implementation_count"),
        verdict=Verdict.APPROVED,
    )
    already = CheckpointCandidate.objects.filter(
        rule=rule, task=OuterRef("pk"), implementation=OuterRef("implementation_count")
    )
    return (
        _in_scope(rule)
        .filter(state=S.IMPLEMENTED, delegated_at__isnull=True)
        .exclude(Exists(approved))
        .exclude(Exists(already))
        .order_by("id")
    )


def _touches_protected(task: Task, globs: list[str]) -> bool:
    paths = list(task.expected_paths)
    if task.implementation_lease_id:
        for touched in Artifact.objects.filter(lease_id=task.implementation_lease_id).values_list(
            "touched_files", flat=True
        ):
            paths.extend(touched)
    return any(fnmatch.fnmatchcase(path, glob) for path in paths for glob in globs)


def _occurrences(rule: GateRule, now: datetime) -> list[tuple[str, list[Task]]]:
    """The (occurrence, candidates) pairs the rule fires for now."""
    awaiting = _awaiting(rule)
    if rule.trigger == Trigger.MILESTONE_DONE:
        milestones = Milestone.objects.filter(project_id=rule.project_id)
        if rule.milestone_id:
            milestones = milestones.filter(pk=rule.milestone_id)
        elif rule.phase_id:
            milestones = milestones.filter(phase_id=rule.phase_id)
        fired = []
        for milestone in milestones:
            work = Task.objects.filter(milestone=milestone).exclude(
                Q(task_class__in=GATE_CLASSES) | Q(state=S.CANCELLED)
            )
            if work.exists() and not work.exclude(state__in=[S.IMPLEMENTED, S.INTEGRATED]).exists():
                fired.append(
                    (f"milestone:{milestone.pk}", list(awaiting.filter(milestone=milestone)))
                )
        return fired
    if rule.trigger == Trigger.UNREVIEWED_BACKLOG:
        candidates = list(awaiting)
        return [_batch(rule, candidates)] if len(candidates) >= rule.threshold else []
    if rule.trigger == Trigger.WAITING_AGE:
        old = awaiting.filter(state_changed_at__lte=now - timedelta(hours=rule.threshold))
        candidates = list(old)
        return [_batch(rule, candidates)] if candidates else []
    if rule.trigger == Trigger.RISK_ACCUMULATION:
        candidates = list(awaiting.filter(task_class__in=RISKY_CLASSES))
        return [_batch(rule, candidates)] if len(candidates) >= rule.threshold else []
    candidates = [t for t in awaiting if _touches_protected(t, rule.protected_paths)]
    return [_batch(rule, candidates)] if candidates else []


def _batch(rule: GateRule, candidates: list[Task]) -> tuple[str, list[Task]]:
    # The batch is named by its implementations: reworked code makes a new occurrence.
    batch = ",".join(f"{t.pk}.{t.implementation_count}" for t in candidates)
    digest = hashlib.sha256(batch.encode()).hexdigest()
    return f"{rule.trigger}:{digest[:24]}", candidates


@retry_on_conflict
def gates_evaluate(*, project_id: int | None = None, now: datetime | None = None) -> list:
    """Create the checkpoints every enabled rule calls for, and flag SLA breaches."""
    now = now or utcnow()
    rules = GateRule.objects.filter(enabled=True)
    if project_id is not None:
        rules = rules.filter(project_id=project_id)
    created = []
    for rule in rules.order_by("id"):
        for occurrence, candidates in _occurrences(rule, now):
            if not candidates:
                continue  # nothing awaits a decision (e.g. a milestone already all approved)
            if Checkpoint.objects.filter(rule=rule, occurrence=occurrence).exists():
                continue
            created.append(_checkpoint_create(rule, occurrence, candidates, now))
    _flag_sla_breaches(project_id, now)
    return created


def _checkpoint_create(rule, occurrence, candidates, now) -> Checkpoint:
    refs = ", ".join(t.ref for t in candidates) or "none"
    with transaction.atomic():
        gate = plan.task_create(
            actor=Actor.system(),
            project_id=rule.project_id,
            title=f"Checkpoint: {rule.name}",
            description=f"{rule.get_trigger_display()} ({occurrence}). Candidates: {refs}.",
            task_class=rule.gate_class,
            priority=0,
            milestone_id=rule.milestone_id,
        )
        checkpoint = Checkpoint.objects.create(
            project_id=rule.project_id,
            rule=rule,
            occurrence=occurrence,
            gate_task=gate,
            due_at=now + timedelta(hours=rule.sla_hours),
        )
        CheckpointCandidate.objects.bulk_create(
            [
                CheckpointCandidate(
                    checkpoint=checkpoint, task=t, rule=rule, implementation=t.implementation_count
                )
                for t in candidates
            ]
        )
        event_record(
            project=rule.project_id,
            task=gate,
            kind="checkpoint.created",
            actor="system",
            checkpoint_id=checkpoint.pk,
            rule_id=rule.pk,
            trigger=rule.trigger,
            occurrence=occurrence,
            candidates=[t.ref for t in candidates],
            due_at=checkpoint.due_at.isoformat(),
        )
    return checkpoint


def _flag_sla_breaches(project_id: int | None, now: datetime) -> None:
    late = Checkpoint.objects.filter(
        decided_at__isnull=True, sla_breached_at__isnull=True, due_at__lte=now
    )
    if project_id is not None:
        late = late.filter(project_id=project_id)
    for checkpoint in late:
        with transaction.atomic():
            flagged = Checkpoint.objects.filter(
                pk=checkpoint.pk, sla_breached_at__isnull=True, decided_at__isnull=True
            ).update(sla_breached_at=now)  # compare-and-swap: one event per breach
            if flagged:
                event_record(
                    project=checkpoint.project_id,
                    task=checkpoint.gate_task,
                    kind="checkpoint.sla_breached",
                    actor="system",
                    checkpoint_id=checkpoint.pk,
                    due_at=checkpoint.due_at.isoformat(),
                )


# --- the decision ----------------------------------------------------------------------------
@retry_on_conflict
def gate_decide(
    *,
    actor: Actor,
    checkpoint_id: int,
    verdict: str,
    rationale: str,
    evidence: dict | None = None,
    now: datetime | None = None,
) -> GateDecision:
    """Settle a checkpoint's whole batch: a pass approves every candidate, a rejection sends
    every candidate back to work. Never by someone who implemented any of them."""
    actor.require(Role.REVIEWER)
    rationale = (rationale or "").strip()
    if not rationale:
        raise InvalidInput("A decision needs a rationale.", fields={"rationale": ["Required."]})
    if verdict not in GateVerdict.values:
        raise InvalidInput("Unknown verdict.", fields={"verdict": GateVerdict.values})
    now = now or utcnow()
    checkpoint = object_visible_or_404(Checkpoint, actor, checkpoint_id)
    with transaction.atomic():
        candidate_ids = list(checkpoint.candidates.values_list("pk", flat=True))
        tasks = {t.pk: t for t in lock_tasks([checkpoint.gate_task_id, *candidate_ids])}
        gate = tasks.pop(checkpoint.gate_task_id)
        if GateDecision.objects.filter(checkpoint=checkpoint).exists():
            raise InvalidTransition("This checkpoint is decided.", checkpoint_id=checkpoint.pk)
        if not can_proceed(gate.settle):
            raise InvalidTransition(
                "The gate task was moved out of the way; this checkpoint can no longer settle.",
                checkpoint_id=checkpoint.pk,
                gate_state=gate.state,
            )
        implementers = sorted({t.implemented_by for t in tasks.values() if t.implemented_by})
        if actor.name in implementers:
            raise SelfReview(checkpoint_id=checkpoint.pk, implemented_by=implementers)
        batched = dict(
            CheckpointCandidate.objects.filter(checkpoint=checkpoint).values_list(
                "task_id", "implementation"
            )
        )
        # The decision is about the code that was batched: a candidate reworked since then
        # (a new implementation) is not ready for this gate, whatever its state.
        current = {
            pk
            for pk, t in tasks.items()
            if t.state == S.INTEGRATED
            or (t.state == S.IMPLEMENTED and t.implementation_count == batched[pk])
        }
        not_ready = sorted(t.ref for pk, t in tasks.items() if pk not in current)
        if verdict in PASSING and not_ready:
            raise GateNotPassable(checkpoint_id=checkpoint.pk, not_ready=not_ready)
        decision = GateDecision.objects.create(
            checkpoint=checkpoint,
            reviewer=actor.name,
            verdict=verdict,
            rationale=rationale,
            evidence=evidence or {},
        )
        per_task = Verdict.APPROVED if verdict in PASSING else Verdict.CHANGES_REQUESTED
        for pk, task in tasks.items():
            if task.state == S.IMPLEMENTED and task.implementation_count == batched[pk]:
                review_apply(
                    task,
                    reviewer=actor.name,
                    verdict=per_task,
                    rationale=f"gate decision {verdict}: {rationale}",
                    now=now,
                    gate_decision_id=decision.pk,
                )
        transition_apply(
            gate,
            gate.settle,
            S.INTEGRATED if verdict in PASSING else S.ABANDONED,
            actor=actor.name,
            kind="checkpoint.decided",
            now=now,
            reason=rationale,
            checkpoint_id=checkpoint.pk,
            verdict=verdict,
            evidence=evidence or {},
        )
        Checkpoint.objects.filter(pk=checkpoint.pk).update(decided_at=now)
    return decision
