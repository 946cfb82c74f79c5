"""Output serializers work out their fields once per class and render as DRF would."""

import pytest
from rest_framework import serializers

from orchestration.api.serializers import LeaseSerializer, TaskSerializer
from orchestration.models import Task
from tascade.api import OutputModelSerializer

pytestmark = pytest.mark.django_db


def _plain(serializer_class):
    """The same shape as a plain ModelSerializer, which introspects on every instance."""
    return type("Plain", (serializers.ModelSerializer,), {"Meta": serializer_class.Meta})


def test_a_task_renders_exactly_as_a_plain_model_serializer_renders_it(make_task):
    task = make_task("render me", expected_paths=["src/**"])
    assert TaskSerializer(task).data == _plain(TaskSerializer)(task).data


def test_the_model_is_introspected_once_per_class(make_task, monkeypatch):
    task = make_task("count me")
    TaskSerializer(task).data  # noqa: B018 - warms the class's fields
    calls = []
    original = serializers.ModelSerializer.get_fields
    monkeypatch.setattr(
        serializers.ModelSerializer,
        "get_fields",
        lambda self: calls.append(type(self)) or original(self),
    )
    for _ in range(3):
        TaskSerializer(task).data  # noqa: B018
    assert calls == []


def test_every_instance_gets_its_own_fields():
    """Guards against instances sharing bound fields (one request's state in another's)."""
    first, second = TaskSerializer(), TaskSerializer()
    assert first.fields["title"] is not second.fields["title"]
    assert first.fields["title"].parent is first and second.fields["title"].parent is second


def test_classes_keep_their_own_fields():
    class Narrow(OutputModelSerializer):
        class Meta:
            model = Task
            fields = ["id", "title"]

    TaskSerializer().fields  # noqa: B018
    assert list(Narrow().fields) == ["id", "title"]
    assert "ref" not in Narrow().fields and "status" in LeaseSerializer().fields
