"""Domain errors.

Every error the hub can report to a client is a :class:`HubError` carrying one of
the error codes of docs/api.md (Errors). The HTTP status for each code lives in ``web/`` (one
place); the domain only says *what* went wrong.
"""

from __future__ import annotations


class HubError(Exception):
    """An error with a public code (docs/api.md), a human message and optionally the field at fault."""

    code = "invalid_request"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code

    def as_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return {"error": body}


class InvalidJSON(HubError):
    code = "invalid_json"


class InvalidActivity(HubError):
    code = "invalid_activity"


class InvalidRequest(HubError):
    code = "invalid_request"


class BadSignature(HubError):
    code = "bad_signature"


class BadToken(HubError):
    code = "bad_token"


class Expired(HubError):
    code = "expired"


class Forbidden(HubError):
    code = "forbidden"


class NotFound(HubError):
    code = "not_found"


class TooLarge(HubError):
    code = "too_large"


class RateLimited(HubError):
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(HubError):
    """A dependency (Redis or Cassandra) does not answer; the client should retry."""

    code = "unavailable"


class ConfigError(Exception):
    """A bad or missing configuration value. ``str()`` is the one line shown to the operator."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"config: {key}: {problem}")
        self.key = key
        self.problem = problem
