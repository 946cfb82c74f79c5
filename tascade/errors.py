"""The base of every domain error.

Services raise these; every interface (API, admin, MCP, forms) renders them the same way:
``{"error": {"code": ..., "message": ..., "details": {...}}}`` with ``http_status``.
Each app declares its own errors in ``<app>/errors.py``.
"""

from typing import Any, ClassVar


class DomainError(Exception):
    code: ClassVar[str] = "RULE_VIOLATION"
    http_status: ClassVar[int] = 409
    default_message: ClassVar[str] = "The request breaks a rule."

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or self.default_message
        self.details = details
        super().__init__(self.message)

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class InvalidInput(DomainError):
    """Input that parses but makes no sense (a field-level validation failure)."""

    code = "VALIDATION_ERROR"
    http_status = 400
    default_message = "The request is not valid."


class NotFound(DomainError):
    """Missing, or not visible to this key: the two are indistinguishable on purpose."""

    code = "NOT_FOUND"
    http_status = 404
    default_message = "Not found."


class Forbidden(DomainError):
    code = "FORBIDDEN"
    http_status = 403
    default_message = "Your role does not allow this."


class ConcurrentUpdate(DomainError):
    """The request kept losing a race with concurrent writers; retrying it is safe."""

    code = "CONCURRENT_UPDATE"
    default_message = "Concurrent changes kept colliding with this request; retry it."
