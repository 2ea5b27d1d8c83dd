"""Who may use the HTTP front door, and how much they may send.

With an API key every request needs `Authorization: Bearer KEY` (or HTTP Basic with the key
as password, which browsers ask for by themselves), except requests from a trusted proxy
address (Home Assistant's ingress, which has authenticated the user already).  With trusted
proxies and no key, other addresses are refused.  Request bodies are bounded before they are
read.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from starlette.exceptions import HTTPException as StarletteHTTPException

from .errors import ApiError, error_response
from .settings import HttpSettings

MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # one recording upload (HA ingress passes up to 16 MiB)
MAX_BODY_BYTES = 256 * 1024  # any other request body


def check_access(settings: HttpSettings, peer: str | None, authorization: str) -> None:
    """ApiError unless this request may be served (see the module docstring)."""
    if peer is not None and peer in settings.trusted_proxies:
        return
    key = settings.api_key
    if not key:
        if settings.trusted_proxies:
            raise ApiError(403, "this HTTP port serves Home Assistant's ingress only; set an "
                           "API key (--http-api-key, the add-on's http_api_key) to use it from "
                           "elsewhere", "forbidden")
        return
    scheme, _, value = authorization.partition(" ")
    given = None
    if scheme.lower() == "bearer":
        given = value.strip()
    elif scheme.lower() == "basic":
        try:
            given = base64.b64decode(value.strip(), validate=True).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            given = None
    if not given or not hmac.compare_digest(given.encode(), key.encode()):
        raise ApiError(401, "missing or wrong API key: send Authorization: Bearer <key>",
                       "invalid_api_key", headers={"WWW-Authenticate": 'Basic realm="Qwen3-TTS"'})


class Access:
    """Every request (page, API, OpenAPI document, unknown paths) passes `check_access`
    before anything else happens."""

    def __init__(self, app, settings: HttpSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            client = scope.get("client")
            authorization = next((value.decode("latin-1") for key, value in scope["headers"]
                                  if key == b"authorization"), "")
            try:
                check_access(self.settings, client[0] if client else None, authorization)
            except ApiError as err:
                await error_response(err.status, err.message, err.code, None,
                                      err.headers)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _TooLarge(StarletteHTTPException):
    """Raised while the body is read (FastAPI passes HTTP exceptions through as they are)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


class BodyLimit:
    """Request bodies bounded before they are read: MAX_UPLOAD_BYTES for the clone upload,
    MAX_BODY_BYTES for anything else (by Content-Length, and by counting what arrives)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = MAX_UPLOAD_BYTES + 64 * 1024 if scope["path"] == "/api/voices/clone" \
            else MAX_BODY_BYTES
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                try:
                    too_large = int(value) > limit
                except ValueError:
                    too_large = True
                if too_large:
                    await error_response(413, f"the request body is larger than {limit} "
                                          "bytes", "too-large")(scope, receive, send)
                    return
        received = 0
        started = False

        async def counting_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge(limit)
            return message

        async def watching_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except _TooLarge:
            if not started:
                await error_response(413, f"the request body is larger than {limit} bytes",
                                      "too-large")(scope, receive, send)
