from rest_framework import serializers

from governance.actors import Role
from governance.models import (
    ApiKey,
    Checkpoint,
    GateDecision,
    GateRule,
    GateVerdict,
    Review,
    Trigger,
    Verdict,
)
from tascade.api import OutputModelSerializer


class ApiKeySerializer(OutputModelSerializer):
    is_active = serializers.BooleanField(read_only=True)

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "actor",
            "label",
            "roles",
            "project",
            "prefix",
            "created_by",
            "created_at",
            "revoked_at",
            "last_used_at",
            "is_active",
        ]
        read_only_fields = fields


class ApiKeyCreateSerializer(serializers.Serializer):
    actor = serializers.CharField(max_length=100)
    roles = serializers.ListField(
        child=serializers.ChoiceField(choices=Role.choices), min_length=1, max_length=5
    )
    project = serializers.IntegerField(min_value=1, max_value=2**62, required=False)
    label = serializers.CharField(max_length=200, required=False, allow_blank=True)


class IssuedKeySerializer(ApiKeySerializer):
    key = serializers.CharField(read_only=True, help_text="The raw key. Shown this once only.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]
        read_only_fields = fields


class WhoAmISerializer(serializers.Serializer):
    actor = serializers.CharField()
    roles = serializers.ListField(child=serializers.CharField())
    project = serializers.IntegerField(allow_null=True)


class ReviewSerializer(OutputModelSerializer):
    class Meta:
        model = Review
        fields = [
            "id",
            "project",
            "task",
            "implementation",
            "implemented_by",
            "reviewer",
            "verdict",
            "rationale",
            "created_at",
        ]
        read_only_fields = fields


class ReviewCreateSerializer(serializers.Serializer):
    verdict = serializers.ChoiceField(choices=Verdict.choices)
    rationale = serializers.CharField(max_length=20_000)


class GateRuleSerializer(OutputModelSerializer):
    class Meta:
        model = GateRule
        fields = [
            "id",
            "project",
            "phase",
            "milestone",
            "name",
            "trigger",
            "gate_class",
            "threshold",
            "protected_paths",
            "sla_hours",
            "enabled",
            "created_by",
            "created_at",
        ]
        read_only_fields = fields


class GateRuleCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    trigger = serializers.ChoiceField(choices=Trigger.choices)
    phase = serializers.IntegerField(min_value=1, max_value=2**62, required=False)
    milestone = serializers.IntegerField(min_value=1, max_value=2**62, required=False)
    gate_class = serializers.ChoiceField(
        choices=[("review_gate", "review_gate"), ("merge_gate", "merge_gate")], required=False
    )
    threshold = serializers.IntegerField(min_value=1, max_value=100_000, required=False)
    protected_paths = serializers.ListField(
        child=serializers.CharField(max_length=500), max_length=200, required=False
    )
    sla_hours = serializers.IntegerField(min_value=1, max_value=24 * 365, required=False)


class GateDecisionSerializer(OutputModelSerializer):
    class Meta:
        model = GateDecision
        fields = ["id", "checkpoint", "reviewer", "verdict", "rationale", "evidence", "created_at"]
        read_only_fields = fields


class CheckpointSerializer(OutputModelSerializer):
    candidates = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    decision = GateDecisionSerializer(read_only=True, allow_null=True, default=None)

    class Meta:
        model = Checkpoint
        fields = [
            "id",
            "project",
            "rule",
            "occurrence",
            "gate_task",
            "candidates",
            "due_at",
            "sla_breached_at",
            "decided_at",
            "decision",
            "created_at",
        ]
        read_only_fields = fields


class GateDecisionCreateSerializer(serializers.Serializer):
    verdict = serializers.ChoiceField(choices=GateVerdict.choices)
    rationale = serializers.CharField(max_length=20_000)
    evidence = serializers.DictField(required=False)


class GateRuleUpdateSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(required=False)
    threshold = serializers.IntegerField(min_value=1, max_value=100_000, required=False)
    sla_hours = serializers.IntegerField(min_value=1, max_value=24 * 365, required=False)
    protected_paths = serializers.ListField(
        child=serializers.CharField(max_length=500), max_length=200, required=False
    )
