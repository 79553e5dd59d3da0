"""HTTP plumbing shared by every API resource: JSON bodies, JSON errors, bearer-token roles.

Errors are always ``{"error": {"code", "message"}}`` with a 4xx/5xx status; a handler raises
``ApiError`` and ``handle_errors`` renders it. Authentication: ``Authorization: Bearer <token>``;
missing or unknown token → 401, a role not allowed for the route → 403.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timezone
from typing import Any

log = logging.getLogger(__name__)

READ_ROLES = ("admin", "supervisor", "agent", "dispatcher")
WRITE_ROLES = ("admin", "supervisor")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    def body(self) -> dict[str, Any]:
        error = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        return {"error": error}


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(value: Any) -> bytes:
    return json.dumps(value, default=_default, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def json_response(request, value: Any, status: int = 200) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
    request.setHeader(b"Cache-Control", b"no-store")
    return dumps(value)


def read_json(request, max_bytes: int) -> Any:
    ctype = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
    if ctype and ctype != b"application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    body = request.content.read(max_bytes + 1)
    if len(body) > max_bytes:
        raise ApiError(413, "body_too_large", f"body larger than {max_bytes} bytes")
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ApiError(400, "bad_json", f"body is not valid JSON: {e}") from None


def bearer_token(request) -> str | None:
    header = request.getHeader(b"authorization")
    if not header:
        return None
    scheme, _, token = header.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


Handler = Callable[..., Awaitable[Any]]


def handle_errors(fn: Handler) -> Handler:
    """Render ApiError (and any unexpected failure, as a 500 without internals) as JSON."""

    @functools.wraps(fn)
    async def wrapper(self, request, *args, **kwargs):
        try:
            return await fn(self, request, *args, **kwargs)
        except ApiError as e:
            return json_response(request, e.body(), e.status)
        except Exception:
            log.exception("API handler %s failed", fn.__name__)
            return json_response(request, ApiError(500, "internal", "internal error").body(), 500)

    return wrapper


def requires(*roles: str) -> Callable[[Handler], Handler]:
    """Authenticate the bearer token and check its role; the user is passed as ``user=``."""

    def decorate(fn: Handler) -> Handler:
        @functools.wraps(fn)
        async def wrapper(self, request, *args, **kwargs):
            token = bearer_token(request)
            if token is None:
                request.setHeader(b"WWW-Authenticate", b'Bearer realm="watchline"')
                raise ApiError(401, "unauthenticated", "missing bearer token")
            user = await self.users.user_for_token(token)
            if user is None:
                request.setHeader(b"WWW-Authenticate", b'Bearer realm="watchline", error="invalid_token"')
                raise ApiError(401, "unauthenticated", "invalid or revoked token")
            if user.role not in roles:
                raise ApiError(403, "forbidden", f"role {user.role} may not do this (needs {' or '.join(roles)})")
            return await fn(self, request, *args, user=user, **kwargs)

        return handle_errors(wrapper)

    return decorate


def query_arg(request, name: str, default: str | None = None) -> str | None:
    values = request.args.get(name.encode())
    if not values:
        return default
    try:
        return values[0].decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "bad_query", f"query parameter {name} is not UTF-8", field=name) from None


def int_arg(request, name: str, default: int, low: int, high: int) -> int:
    text = query_arg(request, name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ApiError(400, "bad_query", f"{name} must be an integer", field=name) from None
    if not low <= value <= high:
        raise ApiError(400, "bad_query", f"{name} must be between {low} and {high}", field=name)
    return value


def routing_error(request, failure) -> bytes:
    """For a resource's ``@app.handle_errors``: Klein's routing failures as JSON errors."""
    from werkzeug.exceptions import MethodNotAllowed, NotFound

    if failure.check(NotFound):
        return json_response(request, ApiError(404, "not_found", "no such resource").body(), 404)
    if failure.check(MethodNotAllowed):
        return json_response(request, ApiError(405, "method_not_allowed", "method not allowed").body(), 405)
    log.error("unhandled API failure: %s", failure.getTraceback())
    return json_response(request, ApiError(500, "internal", "internal error").body(), 500)
