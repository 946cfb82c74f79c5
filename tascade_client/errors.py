"""The one exception the client raises, carrying the server's error shape."""

from typing import Any


class TascadeError(Exception):
    """An error answer of the API (``{"error": {"code", "message", "details"}}``), or a
    request that never got one (``status`` None, ``code`` ``CONNECTION_FAILED`` or
    ``TIMEOUT``)."""

    def __init__(
        self,
        status: int | None,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        super().__init__(f"{code}: {message}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "details": self.details,
        }


class TascadeConnectionError(TascadeError):
    """The server could not be reached, or did not answer in time."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(None, code, message)


def error_from_response(status: int, body: Any, reason: str = "") -> TascadeError:
    """A ``TascadeError`` from an error answer; a body outside the error shape (a proxy's
    HTML page, say) still gives one, with code ``HTTP_<status>``."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        details = error.get("details")
        return TascadeError(
            status,
            error["code"],
            str(error.get("message") or ""),
            details if isinstance(details, dict) else {},
        )
    return TascadeError(status, f"HTTP_{status}", reason or "The server answered with an error.")
