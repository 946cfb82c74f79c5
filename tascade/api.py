"""API plumbing shared by every app: the one error shape, pagination, schema hooks."""

import logging

from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from drf_spectacular.utils import OpenApiResponse
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


def not_found(request, exception=None):
    return JsonResponse(error_body("NOT_FOUND", "Not found."), status=404)


def server_error(request):
    return JsonResponse(
        error_body("INTERNAL_ERROR", "The server failed. This is a bug; it has been logged."),
        status=500,
    )


class IdCursorPagination(CursorPagination):
    """Cursor pagination on the primary key: stable under inserts, an index range scan."""

    ordering = "id"
    page_size_query_param = "page_size"
    max_page_size = 500


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
    409: "A rule said no (state, lease, dependency, cycle, plan version); nothing changed.",
}


def error_responses(*codes: int) -> dict:
    """Schema entries for the error statuses an endpoint can answer with."""
    return {
        code: OpenApiResponse(ErrorSerializer, description=_ERROR_MEANINGS[code])
        for code in (400, 401, 403, 404, *codes)
    }
