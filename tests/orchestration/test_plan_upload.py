"""The planner's upload form: each format, the preview first, then apply on confirmation."""

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from orchestration.models import Changeset, Dependency, Event, Project, Task, TaskState
from orchestration.plan_formats import PlanDocumentError, parse_plan_document

pytestmark = pytest.mark.django_db

OUTLINE = {
    "phases": [
        {
            "name": "Build",
            "milestones": [
                {
                    "name": "API",
                    "tasks": [
                        {"title": "Schema", "key": "schema", "task_class": "migration"},
                        {"title": "Endpoints", "key": "endpoints", "after": ["schema"]},
                    ],
                },
            ],
        },
    ]
}
MARKDOWN = """# Build
## API
- Schema {schema}
  Tables for users and sessions.
- Endpoints {endpoints} (after: schema)
"""
YAML = """phases:
  - name: Build
    milestones:
      - name: API
        tasks:
          - {title: Schema, key: schema}
          - {title: Endpoints, key: endpoints, after: [schema]}
"""


def _upload(admin_client, project, name, content):
    return admin_client.post(
        reverse("plan:upload", args=[project.pk]),
        {
            "document": SimpleUploadedFile(name, content.encode()),
            "base_version": Project.objects.get(pk=project.pk).plan_version,
        },
    )


@pytest.mark.parametrize(
    "name,content",
    [
        ("plan.json", json.dumps(OUTLINE)),
        ("plan.yaml", YAML),
        ("plan.md", MARKDOWN),
        (
            "ops.json",
            json.dumps(
                [
                    {"op": "add_task", "key": "new:schema", "title": "Schema"},
                    {"op": "add_task", "key": "new:endpoints", "title": "Endpoints"},
                    {
                        "op": "add_dependency",
                        "prerequisite": "new:schema",
                        "dependent": "new:endpoints",
                    },
                ]
            ),
        ),
    ],
)
def test_each_format_previews_then_applies(admin_client, project, name, content):
    response = _upload(admin_client, project, name, content)
    assert response.status_code == 302
    changeset = Changeset.objects.get(project=project)
    page = admin_client.get(response["Location"])
    assert b"Impact preview" in page.content and b"T1, T2" in page.content
    assert not Task.objects.filter(project=project).exists()  # nothing yet
    applied = admin_client.post(response["Location"], {}, follow=True)
    assert applied.status_code == 200
    schema, endpoints = Task.objects.filter(project=project).order_by("number")
    assert (schema.title, endpoints.state) == ("Schema", TaskState.BACKLOG)
    assert Dependency.objects.get().prerequisite_id == schema.pk
    assert Changeset.objects.get(pk=changeset.pk).status == "applied"


def test_the_markdown_description_is_kept():
    operations = parse_plan_document("plan.md", MARKDOWN.encode())
    schema = next(op for op in operations if op.get("key") == "new:schema")
    assert schema["description"] == "Tables for users and sessions."


@pytest.mark.parametrize(
    "name,content",
    [
        ("plan.json", "{not json"),
        ("plan.yaml", "phases: [unclosed"),
        ("plan.md", "- a task with no milestone\n"),
        ("plan.txt", "hello"),
        ("plan.json", json.dumps({"phases": [{"milestones": []}]})),
        (
            "plan.json",
            json.dumps([{"op": "add_dependency", "prerequisite": "new:x", "dependent": "T99"}]),
        ),
    ],
)
def test_a_malformed_file_is_a_clear_error_and_changes_nothing(
    admin_client, project, name, content
):
    events = Event.objects.count()
    response = _upload(admin_client, project, name, content)
    if response.status_code == 302:  # well-formed but refused: shown on the preview
        page = admin_client.get(response["Location"])
        assert b"It would be refused" in page.content
    else:
        assert response.status_code == 400
        assert b'class="msg error"' in response.content
    assert not Task.objects.filter(project=project).exists()
    assert Event.objects.count() <= events + 1  # at most the draft's changeset.created


def test_a_plan_that_moved_meanwhile_is_refused_until_rebased(admin_client, project, make_task):
    response = _upload(admin_client, project, "plan.md", MARKDOWN)
    make_task("meanwhile")
    stale = admin_client.post(response["Location"], {})
    assert stale.status_code == 409 and b"The plan moved" in stale.content
    rebased = admin_client.post(response["Location"], {"rebase": "on"}, follow=True)
    assert rebased.status_code == 200
    assert Task.objects.filter(project=project).count() == 3


def test_parse_errors_name_the_line():
    with pytest.raises(PlanDocumentError) as refused:
        parse_plan_document("plan.md", b"# P\n## M\n- ok\nstray text\n")
    assert refused.value.details["line"] == 4
