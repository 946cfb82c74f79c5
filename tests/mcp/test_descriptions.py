"""The tool descriptions and the agent protocol say only true things, and the tool list an
agent loads stays small.

Every backticked word in a tool's description (and its arguments' descriptions, as a client
lists them) must be one of that tool's arguments, a field of its answer, another tool, an
enum value of the models, or an error code Tascade raises. Every refusal a description names
is produced through that tool by a test. Every error code the protocol explains is raised
somewhere in the code, and every code a tool can meet is explained.
"""

import inspect
import json
import re
from pathlib import Path

import anyio
import pytest
from django.conf import settings
from django.db import models
from rest_framework import serializers

import governance.actors
import governance.errors
import governance.models
import orchestration.errors
import orchestration.models
import tascade.errors
from orchestration.services.changesets import OPERATIONS
from tascade.api import _DRF_CODES
from tascade.errors import DomainError
from tascade.mcp.protocol import ERRORS, PROTOCOL
from tascade.mcp.server import CHARS_PER_TOKEN, listed_tools
from tascade.mcp.tools import CHANGESET_OPERATION_KEYS, TOOLS, TOOLS_BY_NAME
from tests.mcp import test_agent_tools, test_planner_reviewer_tools

BACKTICKED = re.compile(r"`([^`]+)`")
TOKEN_BUDGET = 8_000

# Each refusal a tool description names, and the test that produces it through that tool.
NAMED_REFUSALS = {
    ("claim", "TASK_ALREADY_CLAIMED"): test_agent_tools.test_claim_refusals,
    ("claim", "DEPENDENCIES_UNMET"): test_agent_tools.test_claim_refusals,
    ("start", "LEASE_STALE"): test_agent_tools.test_lease_refusals,
    ("heartbeat", "LEASE_EXPIRED"): test_agent_tools.test_lease_refusals,
    ("mark_implemented", "ARTIFACT_REQUIRED"): test_agent_tools.test_lease_refusals,
    (
        "split_task",
        "DEPENDENCY_CYCLE",
    ): test_agent_tools.test_split_task_delegates_and_refuses_a_cycle,
    ("apply_changeset", "PLAN_VERSION_STALE"): (
        test_planner_reviewer_tools.test_planner_creates_a_project_and_plans_it_through_a_changeset
    ),
    ("apply_changeset", "CHANGESET_ALREADY_APPLIED"): (
        test_planner_reviewer_tools.test_planner_creates_a_project_and_plans_it_through_a_changeset
    ),
    ("record_review", "SELF_REVIEW"): (
        test_planner_reviewer_tools.test_reviewer_reviews_from_the_queue_but_never_their_own_work
    ),
}

# Codes no MCP tool can meet: the services that raise them (operator overrides, integration,
# API key administration) have no tool. The base class's code is never raised as such.
NOT_REACHABLE_BY_TOOLS = {
    "RULE_VIOLATION",
    "OVERRIDE_NOT_ALLOWED",
    "APPROVAL_REQUIRED",
    "INTEGRATION_ALREADY_QUEUED",
    "INTEGRATION_NOT_RUNNING",
    "API_KEY_REVOKED",
    # Webhooks are managed over REST and the admin only (operators), never through tools.
    "WEBHOOK_INACTIVE",
    "WEBHOOK_DELIVERY_IN_FLIGHT",
}
# The REST codes an MCP call can meet (authentication; the rest are HTTP-only).
DRF_CODES_REACHABLE = {"UNAUTHENTICATED", "FORBIDDEN", "NOT_FOUND"}


def _domain_errors() -> dict[str, type[DomainError]]:
    errors = {}
    for module in (tascade.errors, orchestration.errors, governance.errors):
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, DomainError):
                errors[cls.code] = cls
    return errors


ERROR_CODES = set(_domain_errors()) | set(_DRF_CODES.values())

ENUM_VALUES = {
    value
    for module in (orchestration.models, governance.models, governance.actors)
    for _, cls in inspect.getmembers(module, inspect.isclass)
    if issubclass(cls, models.TextChoices) and cls is not models.TextChoices
    for value in cls.values
}


def _fields(serializer_class) -> set[str]:
    """A serializer's field names, with one level of nesting as dotted paths; a page's
    items (``results``) by their own names too."""
    if serializer_class is None:
        return set()
    names = set()
    for name, field in serializer_class().fields.items():
        names.add(name)
        nested = field.child if isinstance(field, serializers.ListSerializer) else field
        if isinstance(nested, serializers.BaseSerializer):
            names.update(f"{name}.{sub}" for sub in nested.fields)
            if name == "results":
                names.update(nested.fields)
    return names


def _arguments(spec) -> set[str]:
    return set(spec.arguments().fields)


def _item_arguments(spec) -> set[str]:
    """The fields of arguments that are objects or lists of objects (a split's children)."""
    names = set()
    for field in spec.arguments().fields.values():
        nested = field.child if isinstance(field, serializers.ListSerializer) else field
        if isinstance(nested, serializers.BaseSerializer):
            names.update(nested.fields)
    return names


def _vocabulary(spec) -> set[str]:
    words = _arguments(spec) | _item_arguments(spec) | _fields(spec.answer) | set(TOOLS_BY_NAME)
    words |= ENUM_VALUES | ERROR_CODES
    if spec.name == "create_changeset":
        words |= set(OPERATIONS) | set(CHANGESET_OPERATION_KEYS)
    return words


def _schema_descriptions(schema: dict) -> list[str]:
    found = [schema["description"]] if "description" in schema else []
    for child in schema.get("properties", {}).values():
        found += _schema_descriptions(child)
    if isinstance(schema.get("items"), dict):
        found += _schema_descriptions(schema["items"])
    return found


@pytest.fixture(scope="module")
def listed():
    return {tool["name"]: tool for tool in anyio.run(listed_tools)}


def test_the_listed_tools_are_the_specs(listed):
    assert list(listed) == [spec.name for spec in TOOLS]
    for spec in TOOLS:
        assert listed[spec.name]["description"] == spec.description
        assert set(listed[spec.name]["inputSchema"]["properties"]) == _arguments(spec)


@pytest.mark.parametrize("spec", TOOLS, ids=lambda spec: spec.name)
def test_every_backticked_word_in_a_tool_description_is_real(spec, listed):
    texts = [spec.description, *_schema_descriptions(listed[spec.name]["inputSchema"])]
    named = {word for text in texts for word in BACKTICKED.findall(text)}
    assert named - _vocabulary(spec) == set()


def test_every_refusal_a_description_names_is_produced_through_that_tool():
    named = {
        (spec.name, word)
        for spec in TOOLS
        for word in BACKTICKED.findall(spec.description)
        if word in ERROR_CODES
    }
    assert named == set(NAMED_REFUSALS)
    for test in NAMED_REFUSALS.values():
        assert callable(test) and test.__name__.startswith("test_")


def test_every_backticked_word_in_the_protocol_is_real():
    vocabulary = set(TOOLS_BY_NAME) | ENUM_VALUES | ERROR_CODES
    for spec in TOOLS:
        vocabulary |= _arguments(spec) | _item_arguments(spec) | _fields(spec.answer)
    assert set(BACKTICKED.findall(PROTOCOL)) - vocabulary == set()


def test_the_protocol_names_every_tool_and_every_task_state():
    for name in TOOLS_BY_NAME:
        assert f"`{name}`" in PROTOCOL or name == "get_instructions", name
    for state in orchestration.models.TaskState.values:
        assert f"`{state}`" in PROTOCOL, state


def _raised_in_source(name: str) -> bool:
    pattern = re.compile(rf"raise\s+(exceptions\.)?{name}\b")
    roots = ("tascade", "orchestration", "governance")
    return any(
        pattern.search(path.read_text())
        for root in roots
        for path in (Path(settings.BASE_DIR) / root).rglob("*.py")
    )


def test_every_code_the_protocol_explains_is_raised_somewhere():
    domain = _domain_errors()
    drf = {code: cls for cls, code in _DRF_CODES.items()}
    for code in ERRORS:
        cls = domain.get(code) or drf.get(code)
        assert cls is not None, f"{code} is no error code"
        raised = _raised_in_source(cls.__name__) or (
            code == "UNAUTHENTICATED" and _raised_in_source("NotAuthenticated")
        )
        assert raised, f"nothing raises {cls.__name__} ({code})"


def test_every_code_a_tool_can_meet_is_explained():
    reachable = (set(_domain_errors()) - NOT_REACHABLE_BY_TOOLS) | DRF_CODES_REACHABLE
    assert set(ERRORS) == reachable


def test_the_tool_list_an_agent_loads_stays_under_the_token_budget(listed):
    chars = len(json.dumps(list(listed.values())))
    assert chars // CHARS_PER_TOKEN < TOKEN_BUDGET, chars
