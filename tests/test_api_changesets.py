"""Changesets over HTTP: propose, preview, apply, compare versions."""

import pytest

pytestmark = pytest.mark.django_db


def test_propose_preview_apply_and_compare(api, project, make_task):
    task = make_task()
    planner = api("planner", actor="pl")
    version = planner.get(f"/api/v1/projects/{project.pk}/").json()["plan_version"]
    created = planner.post(
        f"/api/v1/projects/{project.pk}/changesets/",
        {
            "base_version": version,
            "title": "next",
            "operations": [
                {"op": "add_task", "key": "new:x", "title": "X"},
                {"op": "add_dependency", "prerequisite": task.ref, "dependent": "new:x"},
            ],
        },
        format="json",
    )
    assert created.status_code == 201
    changeset = created.json()["id"]
    preview = planner.post(f"/api/v1/changesets/{changeset}/preview/", {}, format="json")
    assert preview.json() == {"valid": True, "impact": preview.json()["impact"]}
    assert preview.json()["impact"]["created"] == ["T2"]
    applied = planner.post(f"/api/v1/changesets/{changeset}/apply/", {}, format="json")
    assert applied.status_code == 200 and applied.json()["applied_version"] == version + 1
    again = planner.post(f"/api/v1/changesets/{changeset}/apply/", {}, format="json")
    assert again.json()["error"]["code"] == "CHANGESET_ALREADY_APPLIED"
    compared = planner.get(
        f"/api/v1/projects/{project.pk}/versions/compare/?from_version={version}"
        f"&to_version={version + 1}"
    ).json()
    assert [c["id"] for c in compared["changesets"]] == [changeset]


def test_a_stale_changeset_says_the_current_version(api, project, make_task):
    planner = api("planner")
    created = planner.post(
        f"/api/v1/projects/{project.pk}/changesets/",
        {"base_version": 1, "operations": [{"op": "add_task", "title": "late"}]},
        format="json",
    ).json()
    make_task()
    refused = planner.post(f"/api/v1/changesets/{created['id']}/apply/", {}, format="json")
    assert refused.status_code == 409
    body = refused.json()["error"]
    assert body["code"] == "PLAN_VERSION_STALE" and body["details"]["current_version"] > 1


def test_a_malformed_operation_is_a_clear_400(api, project):
    response = api("planner").post(
        f"/api/v1/projects/{project.pk}/changesets/",
        {"base_version": 1, "operations": [{"op": "teleport"}]},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["details"]["operation_index"] == 0
