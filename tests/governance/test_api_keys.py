"""API keys: shown once, stored hashed, roles checked, revocation honoured, scope enforced."""

import hashlib
import time

import pytest
from django.core.management import call_command
from django.utils import timezone

from governance.models import ApiKey
from governance.services.api_keys import api_key_create, api_key_revoke
from tascade.errors import Forbidden, InvalidInput
from tests.conftest import ADMIN, agent

pytestmark = pytest.mark.django_db


def test_key_is_stored_only_as_a_hash():
    issued = api_key_create(actor=ADMIN, key_actor="bot", roles=["agent"])
    stored = ApiKey.objects.get(pk=issued.api_key.pk)
    assert issued.raw_key.startswith("tsk_")
    assert stored.key_hash == hashlib.sha256(issued.raw_key.encode()).hexdigest()
    assert issued.raw_key not in {str(v) for v in ApiKey.objects.values().first().values()}


def test_unknown_role_is_refused():
    with pytest.raises(InvalidInput):
        api_key_create(actor=ADMIN, key_actor="bot", roles=["god"])
    assert not ApiKey.objects.exists()


def test_only_admins_make_keys():
    with pytest.raises(Forbidden):
        api_key_create(actor=agent(), key_actor="bot", roles=["admin"])


def test_identity_comes_from_the_key_not_the_body(api, project):
    """Guards against an agent acting as someone else by naming them in the request."""
    client = api("agent", actor="real-agent")
    task = client.post(
        f"/api/v1/projects/{project.pk}/claim-next/", {"agent": "someone-else"}, format="json"
    )
    assert task.status_code == 204  # no task yet; the body's "agent" is ignored
    planner = api("planner", actor="pl")
    planner.post(f"/api/v1/projects/{project.pk}/tasks/", {"title": "t"}, format="json")
    claimed = client.post(
        f"/api/v1/projects/{project.pk}/claim-next/", {"agent": "someone-else"}, format="json"
    )
    assert claimed.json()["lease"]["agent"] == "real-agent"


def test_revoked_key_is_refused(api, project, django_capture_on_commit_callbacks):
    client = api("agent", actor="bot")
    assert client.get("/api/v1/me/").status_code == 200  # now remembered by this process
    with django_capture_on_commit_callbacks(execute=True):
        api_key_revoke(actor=ADMIN, api_key=ApiKey.objects.get(actor="bot"))
    response = client.get("/api/v1/me/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHENTICATED"


def test_scoped_key_sees_only_its_project(api, project):
    from orchestration.services import plan
    from tests.conftest import PLANNER

    other = plan.project_create(actor=PLANNER, name="Other", slug="other")
    hidden = plan.task_create(actor=PLANNER, project_id=other.pk, title="secret")
    client = api("agent", actor="scoped", project=project)
    listed = client.get("/api/v1/projects/").json()["results"]
    assert [p["id"] for p in listed] == [project.pk]
    for url in (
        f"/api/v1/projects/{other.pk}/",
        f"/api/v1/tasks/{hidden.pk}/",
        f"/api/v1/projects/{other.pk}/events/",
        f"/api/v1/tasks/{hidden.pk}/context/",
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        assert response.json()["error"]["code"] == "NOT_FOUND"
    assert client.post(f"/api/v1/tasks/{hidden.pk}/claim/").status_code == 404


def test_create_api_key_command_prints_the_key_last(capsys):
    call_command("create_api_key", "--actor", "ci-bot", "--roles", "agent,planner")
    raw_key = capsys.readouterr().out.strip().splitlines()[-1]
    from governance.authentication import actor_for_raw_key

    actor = actor_for_raw_key(raw_key)
    assert actor.name == "ci-bot"
    assert actor.roles == frozenset({"agent", "planner"})


def test_bootstrap_prints_credentials_once(capsys):
    call_command("bootstrap", "--url", "http://127.0.0.1:9000")
    first = capsys.readouterr().out
    assert "admin API key tsk_" in first
    assert "http://127.0.0.1:9000/api/docs/" in first
    call_command("bootstrap", "--url", "http://127.0.0.1:9000")
    second = capsys.readouterr().out
    assert "tsk_" not in second and "http://127.0.0.1:9000/admin/" in second


def test_a_key_revoked_elsewhere_stops_working_when_the_cache_lapses(api, monkeypatch):
    """Guards against a process trusting a remembered key forever."""
    client = api("agent", actor="bot")
    assert client.get("/api/v1/me/").status_code == 200
    # Revoked by another process: this one's cache is not told.
    ApiKey.objects.filter(actor="bot").update(revoked_at=timezone.now())
    assert client.get("/api/v1/me/").status_code == 200
    real_monotonic = time.monotonic
    monkeypatch.setattr(time, "monotonic", lambda: real_monotonic() + 60)
    assert client.get("/api/v1/me/").status_code == 401
