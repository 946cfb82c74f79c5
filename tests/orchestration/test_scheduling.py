"""Path-aware scheduling: ranking by collisions, exclusive paths, unpredicted overlaps."""

import pytest

from governance.selectors import review_queue
from governance.services.reviews import review_record
from orchestration import scheduling
from orchestration.errors import PathsHeld
from orchestration.models import Event, PathOverlap, Project, Task, TaskState
from orchestration.plan_formats import markdown_outline, outline_operations
from orchestration.services import leases, operations, plan
from orchestration.services.changesets import changeset_apply, changeset_create
from tascade.errors import InvalidInput
from tests.conftest import ADMIN, OPERATOR, PLANNER, agent
from tests.orchestration.helpers import claim

pytestmark = pytest.mark.django_db
A, B, C = agent("agent-a"), agent("agent-b"), agent("agent-c")


def _next(actor, **kwargs):
    lease = leases.task_claim_next(actor=actor, project_id=kwargs.pop("project").pk, **kwargs)
    return lease and lease.task


def _start(task, actor):
    lease = claim(task, actor)
    leases.task_start(actor=actor, task_id=task.pk, lease_token=lease.token)
    return lease


def _publish(task, lease, actor, files):
    return leases.artifact_publish(
        actor=actor, task_id=task.pk, lease_token=lease.token, touched_files=files
    )


# --- ranking ----------------------------------------------------------------------------------
def test_without_paths_claim_next_keeps_priority_then_age(project, make_task):
    first, second, urgent = make_task("first"), make_task("second"), make_task("u", priority=1)
    assert [_next(agent(f"a{i}"), project=project) for i in range(3)] == [urgent, first, second]


def test_a_colliding_task_is_offered_after_clean_work_of_its_priority(project, make_task):
    """Guards against handing out work that contests files already being changed."""
    holder = make_task("models", expected_paths=["orchestration/models.py"])
    claim(holder, A)
    contested = make_task("touches models too", expected_paths=["orchestration/**"])
    clean = make_task("docs", expected_paths=["docs/**"])
    assert _next(B, project=project) == clean
    assert _next(C, project=project) == contested  # offered after, not never


def test_priority_still_outranks_a_collision(project, make_task):
    claim(make_task("held", expected_paths=["a.py"]), A)
    urgent = make_task("urgent but colliding", priority=0, expected_paths=["a.py"])
    make_task("calm and clean", priority=50, expected_paths=["b.py"])
    assert _next(B, project=project) == urgent


def test_fewer_collisions_rank_first(project, make_task):
    claim(make_task("x", expected_paths=["x.py"]), A)
    claim(make_task("y", expected_paths=["y.py"]), B)
    both = make_task("both", expected_paths=["x.py", "y.py"])
    one = make_task("one", expected_paths=["x.py"])
    assert _next(C, project=project) == one
    assert _next(agent("d"), project=project) == both


def test_implemented_but_unintegrated_work_still_counts_as_in_flight(project, make_task):
    done = make_task("done", expected_paths=["api/**"])
    lease = _start(done, A)
    _publish(done, lease, A, ["api/views.py"])
    leases.task_mark_implemented(actor=A, task_id=done.pk, lease_token=lease.token)
    contested = make_task("api again", expected_paths=["api/urls.py"])
    clean = make_task("elsewhere", expected_paths=["web/**"])
    assert _next(B, project=project) == clean
    assert _next(C, project=project) == contested


def test_the_ranking_widens_past_a_window_that_collides_entirely(project, make_task, monkeypatch):
    """Guards against offering colliding work while clean work of its priority waits further on."""
    monkeypatch.setattr(scheduling, "FIRST_WINDOW", 2)
    monkeypatch.setattr(scheduling, "WINDOW", 3)
    claim(make_task("held", expected_paths=["hot.py"]), A)
    colliding = [make_task(f"c{i}", expected_paths=["hot.py"]) for i in range(7)]
    clean = make_task("clean, but late", expected_paths=["cold.py"])
    assert _next(B, project=project) == clean
    assert _next(C, project=project) == colliding[0]


def test_the_ready_list_says_why_each_task_ranks_where_it_does(api, project, make_task):
    held = make_task("held", expected_paths=["orchestration/models.py"])
    claim(held, A)
    contested = make_task("contested", expected_paths=["*/models.py"])
    clean = make_task("clean", expected_paths=["docs/**"])
    blocked = make_task("blocked", exclusive_paths=["orchestration/**"])

    page = api("agent").get(f"/api/v1/projects/{project.pk}/ready/").json()
    items = {item["id"]: item for item in page["results"]}
    assert [item["id"] for item in page["results"]] == [clean.pk, contested.pk, blocked.pk]
    assert items[clean.pk]["path_score"] == 0 and items[clean.pk]["collides_with"] == []
    assert items[contested.pk]["path_score"] == 1
    assert items[contested.pk]["collides_with"] == [
        {
            "task_id": held.pk,
            "ref": held.ref,
            "state": "claimed",
            "holder": A.name,
            "overlaps": [{"path": "*/models.py", "with": "orchestration/models.py"}],
            "overlap_count": 1,
        }
    ]
    assert items[contested.pk]["offered"] is True
    assert items[blocked.pk]["offered"] is False
    assert [c["ref"] for c in items[blocked.pk]["blocked_by"]] == [held.ref]


# --- exclusive paths --------------------------------------------------------------------------
def test_an_exclusive_task_is_withheld_until_the_work_holding_its_paths_is_released(
    project, make_task
):
    """Guards against two agents changing paths one of them needs to itself."""
    held = make_task("migration", expected_paths=["orchestration/migrations/0007.py"])
    lease = claim(held, A)
    exclusive = make_task("renumber migrations", exclusive_paths=["*/migrations/*"], priority=0)

    assert _next(B, project=project) is None  # nothing else is ready: not offered at all
    with pytest.raises(PathsHeld) as refused:
        claim(exclusive, B)
    assert refused.value.http_status == 409
    assert refused.value.details["blocked_by"][0]["ref"] == held.ref

    leases.task_release(actor=A, task_id=held.pk, lease_token=lease.token)
    assert _next(B, project=project) == exclusive


def test_an_exclusive_task_in_flight_keeps_touching_work_away(project, make_task):
    exclusive = make_task("owns docs", exclusive_paths=["docs/**"])
    claim(exclusive, A)
    touching = make_task("edits a doc", expected_paths=["docs/api.md"])
    other = make_task("other", expected_paths=["src/a.py"], priority=500)
    assert _next(B, project=project) == other
    with pytest.raises(PathsHeld):
        claim(touching, C)


def test_exclusive_paths_are_released_when_the_work_is_integrated(project, make_task):
    exclusive = make_task("owns docs", exclusive_paths=["docs/**"])
    lease = _start(exclusive, A)
    _publish(exclusive, lease, A, ["docs/index.md"])
    leases.task_mark_implemented(actor=A, task_id=exclusive.pk, lease_token=lease.token)
    waiting = make_task("edits a doc", expected_paths=["docs/api.md"])
    assert _next(B, project=project) is None  # implemented is still in flight

    review_record(actor=ADMIN, task_id=exclusive.pk, verdict="approved", rationale="fine")
    operations.task_override(
        actor=ADMIN, task_id=exclusive.pk, to_state="cancelled", rationale="merged by hand"
    )
    assert _next(B, project=project) == waiting


def test_a_refused_claim_changes_nothing(project, make_task):
    claim(make_task("held", exclusive_paths=["db/**"]), A)
    blocked = make_task("blocked", expected_paths=["db/schema.sql"])
    events = Event.objects.count()
    with pytest.raises(PathsHeld):
        claim(blocked, B)
    blocked.refresh_from_db()
    assert (blocked.state, blocked.holder, blocked.lease_token_seq) == (TaskState.READY, "", 0)
    assert Event.objects.count() == events


def test_a_reservation_does_not_skip_the_exclusive_check(project, make_task):
    claim(make_task("held", exclusive_paths=["db/**"]), A)
    reserved = make_task("reserved", expected_paths=["db/schema.sql"])
    operations.task_assign(actor=OPERATOR, task_id=reserved.pk, assignee=B.name)
    assert _next(B, project=project) is None
    with pytest.raises(PathsHeld):
        claim(reserved, B)


def test_the_claim_event_names_the_collisions_it_accepted(project, make_task):
    held = make_task("held", expected_paths=["a.py"])
    claim(held, A)
    contested = make_task("contested", expected_paths=["a.py"])
    assert _next(B, project=project) == contested
    event = Event.objects.filter(task=contested, kind="task.claimed").get()
    assert event.payload["path_collisions"] == [held.ref]


# --- the collisions read ----------------------------------------------------------------------
def test_an_agent_can_ask_which_work_in_flight_meets_its_task(api, project, make_task):
    held = make_task("held", expected_paths=["docs/**"], exclusive_paths=["docs/api.md"])
    claim(held, A)
    mine = make_task("mine", expected_paths=["docs/api.md", "src/x.py"])
    body = api("agent").get(f"/api/v1/tasks/{mine.pk}/collisions/").json()
    assert body["paths"] == ["docs/api.md", "src/x.py"]
    assert body["score"] == 1 and body["offered"] is False
    assert [c["ref"] for c in body["collisions"]] == [held.ref]
    assert {o["with"] for o in body["collisions"][0]["overlaps"]} == {"docs/**", "docs/api.md"}
    assert [c["ref"] for c in body["blocked_by"]] == [held.ref]


def test_the_collisions_of_an_in_flight_task_leave_itself_out(api, project, make_task):
    held = make_task("held", expected_paths=["a.py"])
    claim(held, A)
    body = api("agent").get(f"/api/v1/tasks/{held.pk}/collisions/").json()
    assert body["collisions"] == [] and body["offered"] is True


def test_another_projects_task_has_no_collisions_to_show(api, project, make_task):
    other = plan.project_create(actor=PLANNER, name="Other", slug="other")
    task = make_task()
    response = api("agent", project=other).get(f"/api/v1/tasks/{task.pk}/collisions/")
    assert response.status_code == 404


# --- validation on every plan-writing path ----------------------------------------------------
@pytest.mark.parametrize("bad", ["/abs/path", "../up", "a//b", "a**", ""])
def test_bad_globs_are_refused_by_the_task_api(api, project, bad):
    response = api("planner").post(
        f"/api/v1/projects/{project.pk}/tasks/",
        {"title": "t", "exclusive_paths": ["ok/**", bad]},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert not Task.objects.filter(project=project).exists()


def test_globs_are_stored_normalised(make_task):
    task = make_task(expected_paths=["docs/", "b.py", "b.py"], exclusive_paths=["x/**"])
    assert (task.expected_paths, task.exclusive_paths) == (["b.py", "docs/**"], ["x/**"])


@pytest.mark.parametrize("op", ["add_task", "update_task"])
def test_bad_globs_are_refused_by_a_changeset(project, make_task, op):
    task = make_task()
    version = Project.objects.get(pk=project.pk).plan_version
    operation = {"op": op, "exclusive_paths": ["/etc/**"]}
    operation.update({"title": "new"} if op == "add_task" else {"task": task.ref})
    changeset = changeset_create(
        actor=PLANNER, project_id=project.pk, base_version=version, operations=[operation]
    )
    with pytest.raises(InvalidInput) as refused:
        changeset_apply(actor=PLANNER, changeset_id=changeset.pk)
    assert refused.value.details["field"] == "exclusive_paths"
    assert Project.objects.get(pk=project.pk).plan_version == version


def test_a_path_change_is_material_and_releases_an_unstarted_claim(project, make_task):
    """Guards against a claim granted on paths the plan no longer says."""
    task = make_task(expected_paths=["a.py"])
    claim(task, A)
    changeset = changeset_create(
        actor=PLANNER,
        project_id=project.pk,
        base_version=Project.objects.get(pk=project.pk).plan_version,
        operations=[{"op": "update_task", "task": task.ref, "exclusive_paths": ["a.py"]}],
    )
    applied = changeset_apply(actor=PLANNER, changeset_id=changeset.pk)
    task.refresh_from_db()
    assert applied.impact["claims_released"] == [task.ref]
    assert (task.state, task.exclusive_paths) == (TaskState.READY, ["a.py"])


def test_plan_outlines_carry_paths():
    outline = markdown_outline(
        "# P\n## M\n- Renumber {renumber} (exclusive: */migrations/*) (paths: docs/**, a.py)\n"
    )
    [task] = outline["phases"][0]["milestones"][0]["tasks"]
    assert task == {
        "title": "Renumber",
        "key": "renumber",
        "exclusive_paths": ["*/migrations/*"],
        "expected_paths": ["docs/**", "a.py"],
    }
    add = next(op for op in outline_operations(outline) if op["op"] == "add_task")
    assert add["exclusive_paths"] == ["*/migrations/*"]


# --- unpredicted overlaps ---------------------------------------------------------------------
def test_an_unpredicted_overlap_is_recorded_and_flagged_on_both_tasks(api, project, make_task):
    """Guards against two tasks silently changing one file the plan kept apart."""
    first = make_task("api", expected_paths=["api/**"])
    second = make_task("web", expected_paths=["web/**"])
    first_lease, second_lease = _start(first, A), _start(second, B)
    _publish(first, first_lease, A, ["api/views.py", "shared/settings.py"])
    assert not PathOverlap.objects.exists()  # nobody else touches these yet

    artifact = _publish(second, second_lease, B, ["web/app.js", "shared/settings.py"])

    overlap = PathOverlap.objects.get()
    assert (overlap.task_id, overlap.other_task_id, overlap.artifact_id) == (
        second.pk,
        first.pk,
        artifact.pk,
    )
    assert overlap.overlaps == [{"path": "shared/settings.py", "pattern": "shared/settings.py"}]
    event = Event.objects.get(kind="path_overlap.detected")
    assert (event.task_id, event.payload["other_ref"]) == (second.pk, first.ref)
    assert event.payload["paths"] == ["shared/settings.py"]
    for task in (first, second):
        context = api("agent").get(f"/api/v1/tasks/{task.pk}/context/").json()
        assert [o["id"] for o in context["path_overlaps"]] == [overlap.pk]


def test_an_overlap_the_plan_predicted_is_not_recorded(project, make_task):
    first = make_task("one", expected_paths=["shared/**"])
    second = make_task("two", expected_paths=["shared/settings.py"])
    lease = _start(first, A)
    _publish(first, lease, A, ["shared/settings.py"])
    lease = _start(second, B)
    _publish(second, lease, B, ["shared/settings.py"])
    assert not PathOverlap.objects.exists()


def test_a_touched_file_meeting_anothers_expected_glob_is_recorded_once(project, make_task):
    planned = make_task("docs", expected_paths=["docs/**"])
    claim(planned, A)
    stray = make_task("code", expected_paths=["src/**"])
    lease = _start(stray, B)
    _publish(stray, lease, B, ["docs/readme.md", "src/a.py"])
    _publish(stray, lease, B, ["docs/readme.md"])  # the same file again: nothing new
    overlap = PathOverlap.objects.get()
    assert overlap.overlaps == [{"path": "docs/readme.md", "pattern": "docs/**"}]


def test_touched_paths_feed_the_ranking_of_tasks_still_to_come(project, make_task):
    """A touched path counts like an expected one from the moment it is reported."""
    busy = make_task("busy", expected_paths=["src/**"])
    lease = _start(busy, A)
    _publish(busy, lease, A, ["config/settings.py"])
    contested = make_task("settings", expected_paths=["config/*.py"])
    clean = make_task("clean", expected_paths=["docs/**"])
    assert _next(B, project=project) == clean
    assert _next(C, project=project) == contested
    busy.refresh_from_db()
    assert busy.touched_paths == ["config/settings.py"]


def test_bad_touched_files_are_refused(project, make_task):
    task = make_task()
    lease = _start(task, A)
    with pytest.raises(InvalidInput):
        _publish(task, lease, A, ["../../etc/passwd"])
    assert not task.artifacts.exists()


def test_the_review_queue_shows_unpredicted_overlaps(project, make_task):
    first = make_task("one", expected_paths=["a/**"])
    second = make_task("two", expected_paths=["b/**"])
    lease_one, lease_two = _start(first, A), _start(second, B)
    _publish(first, lease_one, A, ["shared.py"])
    _publish(second, lease_two, B, ["shared.py"])
    for task, lease, actor in ((first, lease_one, A), (second, lease_two, B)):
        leases.task_mark_implemented(actor=actor, task_id=task.pk, lease_token=lease.token)
    clean = make_task("clean")
    lease = _start(clean, C)
    _publish(clean, lease, C, ["c.py"])
    leases.task_mark_implemented(actor=C, task_id=clean.pk, lease_token=lease.token)

    queue = {t.pk: t.unpredicted_overlaps for t in review_queue(ADMIN, project.pk)}
    assert queue == {first.pk: 1, second.pk: 1, clean.pk: 0}


def test_the_review_queue_api_carries_the_flag(api, project, make_task):
    first, second = make_task("one"), make_task("two")
    lease_one, lease_two = _start(first, A), _start(second, B)
    _publish(first, lease_one, A, ["shared.py"])
    _publish(second, lease_two, B, ["shared.py"])
    leases.task_mark_implemented(actor=A, task_id=first.pk, lease_token=lease_one.token)
    body = api("reviewer").get(f"/api/v1/projects/{project.pk}/review-queue/").json()
    assert [(t["id"], t["unpredicted_overlaps"]) for t in body] == [(first.pk, 1)]
