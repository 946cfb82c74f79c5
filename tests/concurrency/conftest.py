"""Concurrency proofs run on PostgreSQL only: SQLite serialises writers and proves nothing."""

import pytest
from django.db import connection

from orchestration.services import plan
from tests.concurrency.harness import PLANNER


@pytest.fixture(autouse=True)
def _postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("concurrency proofs need PostgreSQL")


@pytest.fixture
def conc_project(transactional_db):
    return plan.project_create(actor=PLANNER, name="Concurrency", slug="concurrency")


@pytest.fixture
def new_task(conc_project):
    def make(title: str = "task", **kwargs):
        return plan.task_create(actor=PLANNER, project_id=conc_project.pk, title=title, **kwargs)

    return make
