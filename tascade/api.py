"""API plumbing shared by every app: the one error shape, pagination, schema hooks."""

import copy
import logging
import re

import django_filters
from django import forms
from django.conf import settings
from django.core.exceptions import (
    PermissionDenied,
    RequestDataTooBig,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.db import models
from django.http import Http404, JsonResponse
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiResponse, extend_schema_field
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from tascade.errors import DomainError

logger = logging.getLogger(__name__)

_DRF_CODES = {
    exceptions.ParseError: "MALFORMED_REQUEST",
    exceptions.AuthenticationFailed: "UNAUTHENTICATED",
    exceptions.NotAuthenticated: "UNAUTHENTICATED",
    exceptions.PermissionDenied: "FORBIDDEN",
    exceptions.NotFound: "NOT_FOUND",
    exceptions.MethodNotAllowed: "METHOD_NOT_ALLOWED",
    exceptions.NotAcceptable: "NOT_ACCEPTABLE",
    exceptions.UnsupportedMediaType: "UNSUPPORTED_MEDIA_TYPE",
    exceptions.Throttled: "THROTTLED",
}


def error_body(code: str, message: str, details: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def exception_handler(exc, context):
    """Render every error in the one shape from DESIGN.md."""
    if isinstance(exc, DomainError):
        return Response({"error": exc.as_dict()}, status=exc.http_status)
    if isinstance(exc, RequestDataTooBig):
        # Django refuses to read the body (a SuspiciousOperation it would answer with an
        # HTML 400 of its own): the one error shape instead, still a 400 for invalid input.
        return Response(
            error_body(
                "REQUEST_TOO_LARGE",
                "The request body is too large.",
                {"max_bytes": settings.DATA_UPLOAD_MAX_MEMORY_SIZE},
            ),
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        return Response(
            error_body("MALFORMED_REQUEST", str(exc)), status=status.HTTP_400_BAD_REQUEST
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return Response(
            error_body("VALIDATION_ERROR", "The request is not valid.", {"fields": detail}),
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, exceptions.APIException):
        code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "ERROR")
        headers = {}
        if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
            headers["WWW-Authenticate"] = 'Bearer realm="api"'
            exc.status_code = status.HTTP_401_UNAUTHORIZED
        return Response(error_body(code, str(exc.detail)), status=exc.status_code, headers=headers)
    return None  # a real bug: Django turns it into a 500, rendered by server_error below


def bad_request(request, exception=None):
    return JsonResponse(error_body("BAD_REQUEST", "The request is not valid."), status=400)


def forbidden(request, exception=None):
    return JsonResponse(error_body("FORBIDDEN", "Not allowed."), status=403)


def not_found(request, exception=None):
    return JsonResponse(error_body("NOT_FOUND", "Not found."), status=404)


def server_error(request):
    return JsonResponse(
        error_body("INTERNAL_ERROR", "The server failed. This is a bug; it has been logged."),
        status=500,
    )


_CURSOR_POSITION = re.compile(r"-?[0-9]{1,19}")


class IdCursorPagination(CursorPagination):
    """Cursor pagination on the primary key: stable under inserts, an index range scan.

    Every ordering it serves starts with an integer column (the id, or the ready list's
    priority), so a cursor's position must be an integer: anything else is an invalid
    cursor (404, like any other cursor that does not decode), never a query error.
    """

    ordering = "id"
    page_size_query_param = "page_size"
    max_page_size = 500

    def decode_cursor(self, request):
        cursor = super().decode_cursor(request)
        position = cursor.position if cursor is not None else None
        if position is not None and not _CURSOR_POSITION.fullmatch(position):
            raise exceptions.NotFound(self.invalid_cursor_message)
        return cursor


MAX_ID = 2**62


class IntegerFilter(django_filters.NumberFilter):
    """An integer column filtered as an integer (django-filter's default reads a decimal,
    so ``?number=1.5`` would match 1)."""

    field_class = forms.IntegerField


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": MAX_ID})
class IdFilter(IntegerFilter):
    """A filter on a related object's id, by value.

    django-filter's default for a foreign key looks the object up among all rows and answers
    400 when it does not exist, so a key confined to one project could learn which ids exist
    in the others (400 for none, 200 for another project's). By value, both match nothing.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


class ApiFilterSet(django_filters.FilterSet):
    class Meta:
        filter_overrides = {
            models.ForeignKey: {"filter_class": IdFilter},
            **{
                field: {"filter_class": IntegerFilter}
                for field in (
                    models.IntegerField,
                    models.BigIntegerField,
                    models.SmallIntegerField,
                    models.PositiveIntegerField,
                    models.PositiveBigIntegerField,
                    models.PositiveSmallIntegerField,
                )
            },
        }


class ApiFilterBackend(DjangoFilterBackend):
    """``filterset_fields`` filtering: foreign keys by id (``IdFilter``), integers as
    integers (``IntegerFilter``)."""

    filterset_base = ApiFilterSet


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. LEASE_STALE.")
    message = serializers.CharField()
    details = serializers.DictField()


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


_ERROR_MEANINGS = {
    400: "Invalid input (field-level details in `details.fields`); nothing changed.",
    401: "No API key, or an unknown or revoked one.",
    403: "Your role does not allow this.",
    404: "Not found, or not visible to this key.",
    409: (
        "A rule said no (state, lease, dependency, cycle, plan version), or concurrent "
        "writers kept colliding with the request (CONCURRENT_UPDATE: retry it); nothing changed."
    ),
}


def error_responses(*codes: int) -> dict:
    """Schema entries for the error statuses an endpoint can answer with."""
    return {
        code: OpenApiResponse(ErrorSerializer, description=_ERROR_MEANINGS[code])
        for code in (400, 401, 403, 404, *codes)
    }


# A model serializer that works out its fields once per class, not once per instance.
# ModelSerializer introspects the model for every instance it makes, about half the cost of
# rendering a task. The fields depend only on the class (its Meta and declared fields), so
# every instance gets a fresh copy of the first instance's, as DRF does for declared fields.
# (A comment, not a docstring: the schema would show a docstring on every output shape.)
class OutputModelSerializer(serializers.ModelSerializer):
    def get_fields(self):
        cls = type(self)
        prototype = cls.__dict__.get("_fields_prototype")
        if prototype is None:
            prototype = cls._fields_prototype = super().get_fields()
        return copy.deepcopy(prototype)
