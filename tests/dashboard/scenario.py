"""A small project in the middle of its life, built through the real services: what the
dashboard tests and the screenshots look at."""

from dataclasses import dataclass, field
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from governance.actors import Actor, Role
from governance.services.reviews import review_record
from orchestration.models import Project, Task
from orchestration.services import leases, plan
from orchestration.services.integration import integration_enqueue
from tests.conftest import ADMIN, PLANNER

REVIEWER = Actor(name="reviewer-1", roles=frozenset({Role.REVIEWER}))
OPERATOR = Actor(name="operator-1", roles=frozenset({Role.OPERATOR}))


def agent(name: str) -> Actor:
    return Actor(name=name, roles=frozenset({Role.AGENT}))


@dataclass
class Scenario:
    project: Project
    tasks: dict[str, Task] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)

    def task(self, key: str) -> Task:
        return Task.objects.get(pk=self.tasks[key].pk)


def build_scenario(name: str = "Checkout service") -> Scenario:
    """Two phases, three milestones, eleven tasks and their edges. ``schema`` was claimed,
    started, given an artifact, implemented, approved and queued for integration; ``api``
    is in progress under agent-2; ``ui`` is claimed by agent-3; the rest wait."""
    project = plan.project_create(actor=PLANNER, name=name, slug=name.lower().replace(" ", "-"))
    build = plan.phase_create(actor=PLANNER, project_id=project.pk, name="Build")
    ship = plan.phase_create(actor=PLANNER, project_id=project.pk, name="Ship", position=1)
    core = plan.milestone_create(
        actor=PLANNER, project_id=project.pk, phase_id=build.pk, name="Core"
    )
    web = plan.milestone_create(
        actor=PLANNER, project_id=project.pk, phase_id=build.pk, name="Web", position=1
    )
    launch = plan.milestone_create(
        actor=PLANNER, project_id=project.pk, phase_id=ship.pk, name="Launch", position=2
    )
    specs = {
        "schema": ("Orders schema and migration", core, "migration", ["db/migrations/0001.py"]),
        "model": ("Order model and service", core, "feature", ["src/orders/service.py"]),
        "api": ("Checkout API endpoints", core, "feature", ["src/api/checkout.py"]),
        "auth": ("Session authentication", core, "security", ["src/api/auth.py"]),
        "ui": ("Cart page", web, "feature", ["web/cart.tsx"]),
        "pay": ("Payment form", web, "feature", ["web/payment.tsx"]),
        "tests": ("End-to-end checkout tests", web, "test", ["tests/e2e/checkout.py"]),
        "docs": ("API reference", launch, "docs", ["docs/api.md"]),
        "deploy": ("Deployment pipeline", launch, "infra", ["deploy/pipeline.yml"]),
        "flags": ("Feature flags for rollout", launch, "infra", ["deploy/flags.yml"]),
        "launch": ("Launch checklist", launch, "other", ["docs/launch.md"]),
    }
    scenario = Scenario(project=project)
    for key, (title, milestone, task_class, paths) in specs.items():
        scenario.tasks[key] = plan.task_create(
            actor=PLANNER,
            project_id=project.pk,
            milestone_id=milestone.pk,
            title=title,
            task_class=task_class,
            expected_paths=paths,
            work_spec={"objective": title, "acceptance_criteria": ["tests pass"]},
        )
    for prerequisite, dependent in [
        ("schema", "model"),
        ("model", "api"),
        ("auth", "api"),
        ("api", "pay"),
        ("ui", "pay"),
        ("pay", "tests"),
        ("api", "docs"),
        ("tests", "deploy"),
        ("deploy", "launch"),
        ("docs", "launch"),
        ("flags", "launch"),
    ]:
        plan.dependency_add(
            actor=PLANNER,
            project_id=project.pk,
            prerequisite_id=scenario.tasks[prerequisite].pk,
            dependent_id=scenario.tasks[dependent].pk,
        )
        scenario.edges.append((prerequisite, dependent))

    one, two, three = agent("agent-1"), agent("agent-2"), agent("agent-3")
    schema = scenario.tasks["schema"]
    lease = leases.task_claim(actor=one, task_id=schema.pk)
    leases.task_start(actor=one, task_id=schema.pk, lease_token=lease.token)
    leases.lease_heartbeat(actor=one, task_id=schema.pk, lease_token=lease.token)
    leases.artifact_publish(
        actor=one,
        task_id=schema.pk,
        lease_token=lease.token,
        branch="t1-orders-schema",
        commit_sha="3f2a9c1d5e7b",
        touched_files=["db/migrations/0001.py"],
        check_status="passed",
    )
    leases.task_mark_implemented(actor=one, task_id=schema.pk, lease_token=lease.token)
    review_record(
        actor=REVIEWER,
        task_id=schema.pk,
        verdict="approved",
        rationale="Migration is reversible and indexed.",
    )
    integration_enqueue(actor=OPERATOR, task_id=schema.pk)

    auth = scenario.tasks["auth"]
    lease = leases.task_claim(actor=two, task_id=auth.pk)
    leases.task_start(actor=two, task_id=auth.pk, lease_token=lease.token)
    leases.task_claim(actor=three, task_id=scenario.tasks["ui"].pk)
    # An earlier lease of "flags" that lapsed: its agent went silent.
    leases.task_claim(
        actor=three,
        task_id=scenario.tasks["flags"].pk,
        now=timezone.now() - timedelta(seconds=3 * project.lease_ttl_seconds),
    )
    return scenario


def dashboard_user(username: str = "watcher", *, superuser: bool = True):
    user_model = get_user_model()
    if superuser:
        return user_model.objects.create_superuser(username=username, password="pw-" + username)
    return user_model.objects.create_user(username=username, password="pw-" + username)


__all__ = ["ADMIN", "Scenario", "build_scenario", "dashboard_user"]
