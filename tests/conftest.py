"""Shared fixtures: actors, API clients with real keys, and a plan built through services."""

import pytest
from rest_framework.test import APIClient

from governance.actors import Actor, Role
from governance.services.api_keys import api_key_create
from orchestration.services import plan

ADMIN = Actor(name="root", roles=frozenset({Role.ADMIN}))


PLANNER = Actor(name="planner", roles=frozenset({Role.PLANNER}))
OPERATOR = Actor(name="operator", roles=frozenset({Role.OPERATOR}))


def pytest_addoption(parser):
    parser.addoption(
        "--screenshots",
        metavar="DIR",
        default=None,
        help="the browser tests save a PNG of each dashboard page there (docs/screenshots)",
    )


def agent(name: str = "agent-1", project_id: int | None = None) -> Actor:
    return Actor(name=name, roles=frozenset({Role.AGENT}), project_id=project_id)


@pytest.fixture
def project(db):
    return plan.project_create(actor=PLANNER, name="Demo", slug="demo")


@pytest.fixture
def make_task(project):
    def make(title: str = "task", **kwargs):
        return plan.task_create(actor=PLANNER, project_id=project.pk, title=title, **kwargs)

    return make


@pytest.fixture
def edge(project):
    def add(prerequisite, dependent, unlock_on="implemented"):
        return plan.dependency_add(
            actor=PLANNER,
            project_id=project.pk,
            prerequisite_id=prerequisite.pk,
            dependent_id=dependent.pk,
            unlock_on=unlock_on,
        )

    return add


@pytest.fixture
def api(db):
    """``api(roles, actor=…, project=…)`` → an APIClient authenticated with a fresh key."""

    def client_for(*roles: str, actor: str = "tester", project=None) -> APIClient:
        issued = api_key_create(
            actor=ADMIN, key_actor=actor, roles=list(roles) or [Role.ADMIN], project=project
        )
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.raw_key}")
        return client

    return client_for
