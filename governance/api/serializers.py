from rest_framework import serializers

from governance.actors import Role
from governance.models import ApiKey, Review, Verdict


class ApiKeySerializer(serializers.ModelSerializer):
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


class ReviewSerializer(serializers.ModelSerializer):
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
