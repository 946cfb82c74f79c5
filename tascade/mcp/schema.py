"""JSON Schema for a tool's arguments, read off the DRF input serializer that validates them.

The REST endpoint and the tool validate with the same serializer, so the schema an agent is
shown, the rules REST applies and the rules the tool applies are one thing. The schema is kept
compact (no titles, no defaults the agent does not need): every tool definition is loaded into
an agent's context.
"""

from typing import Any

from rest_framework import serializers


def field_schema(field: serializers.Field) -> dict[str, Any]:
    schema: dict[str, Any]
    if isinstance(field, serializers.ListSerializer):  # ``Serializer(many=True)``
        schema = {"type": "array", "items": object_schema(field.child)}
        if field.min_length is not None:
            schema["minItems"] = field.min_length
        if field.max_length is not None:
            schema["maxItems"] = field.max_length
    elif isinstance(field, serializers.BaseSerializer):
        schema = object_schema(field)
    elif isinstance(field, serializers.ChoiceField):
        schema = {"enum": list(field.choices)}
    elif isinstance(field, serializers.BooleanField):
        schema = {"type": "boolean"}
    elif isinstance(field, serializers.IntegerField):
        schema = {"type": "integer"}
        if field.min_value is not None:
            schema["minimum"] = field.min_value
        if field.max_value is not None:
            schema["maximum"] = field.max_value
    elif isinstance(field, serializers.CharField):
        schema = {"type": "string"}
        if field.max_length is not None:
            schema["maxLength"] = field.max_length
    elif isinstance(field, serializers.ListField):
        schema = {"type": "array", "items": field_schema(field.child)}
        if field.min_length is not None:
            schema["minItems"] = field.min_length
        if field.max_length is not None:
            schema["maxItems"] = field.max_length
    elif isinstance(field, serializers.DictField):
        schema = {"type": "object"}
    else:  # pragma: no cover - a field type no tool uses yet
        raise TypeError(f"No JSON Schema mapping for {type(field).__name__}")
    if field.help_text:
        schema["description"] = str(field.help_text)
    return schema


def object_schema(serializer: serializers.BaseSerializer) -> dict[str, Any]:
    fields = serializer.fields
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {name: field_schema(f) for name, f in fields.items() if not f.read_only},
    }
    required = [name for name, f in fields.items() if f.required]
    if required:
        schema["required"] = required
    schema["additionalProperties"] = False
    return schema
