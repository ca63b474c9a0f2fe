"""Bounds on what the HTTP API reads, and errors that never echo more than a short prefix of
the input.

:class:`BodyLimits` is a small ASGI middleware (uvicorn has no setting for either): a request
whose URL is longer than :attr:`HttpLimits.max_url_bytes` answers 414, one whose declared or
received body is larger than :attr:`HttpLimits.max_body_bytes` answers 413 without the body
being read, and one whose body does not arrive in full within
:attr:`HttpLimits.body_timeout` seconds (a body shorter than its ``Content-Length``) answers
408; these three close the connection. Ids longer than :data:`MAX_ID_LENGTH` characters answer
422 (the endpoints' parameter models). Error details quote at most :data:`ECHO` characters of
a bad value.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kg.serve_models import MAX_ID_LENGTH

__all__ = ["ECHO", "MAX_ID_LENGTH", "BodyLimits", "HttpLimits", "short", "validation_details"]

#: The most characters of a bad value an error message quotes.
ECHO = 64
#: The most validation errors an answer lists.
MAX_ERRORS = 10


@dataclass(frozen=True)
class HttpLimits:
    """What one request may send (the ``kgrec serve`` options of the same names).

    Attributes:
        max_body_bytes: the largest request body (413 above it).
        max_url_bytes: the longest path plus query string, percent-encoded (414 above it).
        body_timeout: seconds a request body may take to arrive in full (408 after it).
    """

    max_body_bytes: int = 1_048_576
    max_url_bytes: int = 16_384
    body_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1 or self.max_url_bytes < 64 or self.body_timeout <= 0:
            raise ValueError("need max_body_bytes >= 1, max_url_bytes >= 64 and body_timeout > 0")


def short(value: Any, limit: int = ECHO) -> str:
    """``value`` as text (JSON for anything but a string), cut to ``limit`` characters with
    ``…`` and the full length when longer."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters)"


def validation_details(errors: Any) -> list[dict[str, Any]]:
    """FastAPI's validation errors, the first :data:`MAX_ERRORS`, with each ``input`` cut by
    :func:`short` (pydantic puts the whole bad value there)."""
    errors = list(errors)
    out: list[dict[str, Any]] = []
    if len(errors) > MAX_ERRORS:
        more = len(errors) - MAX_ERRORS
        out.append({"type": "too_many_errors", "loc": [], "msg": f"{more:,} more errors"})
    for error in errors[:MAX_ERRORS]:
        error = dict(error)
        if "input" in error:
            error["input"] = short(error["input"])
        error.pop("ctx", None)  # may hold the exception object, and repeats msg
        error.pop("url", None)
        out.append(error)
    return out[1:] + out[:1] if len(errors) > MAX_ERRORS else out


async def _reject(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimits:
    """The ASGI middleware of the module docstring.

    Args:
        app: the application it wraps.
        limits: the bounds.
    """

    def __init__(self, app: ASGIApp, limits: HttpLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limits = self.limits
        url = len(scope.get("raw_path") or scope["path"].encode()) + len(scope["query_string"])
        if url > limits.max_url_bytes:
            await _reject(send, 414, f"the URL is longer than {limits.max_url_bytes:,} bytes")
            return
        length: int | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit():
                    await _reject(send, 400, "Content-Length is not a number")
                    return
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = True
        if (length is None and not chunked) or length == 0:
            await self.app(scope, receive, send)  # no body (most GET requests)
            return
        if length is not None and length > limits.max_body_bytes:
            await _reject(send, 413, f"the body is larger than {limits.max_body_bytes:,} bytes")
            return
        body = await self._read_body(receive, send)
        if body is None:
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read_body(self, receive: Receive, send: Send) -> bytes | None:
        """The whole body, or ``None`` when it was refused (answered) or the client left."""
        limits = self.limits
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limits.body_timeout
        chunks, size = [], 0
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                await _reject(
                    send, 408, f"the body did not arrive within {limits.body_timeout:g} s"
                )
                return None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limits.max_body_bytes:
                await _reject(send, 413, f"the body is larger than {limits.max_body_bytes:,} bytes")
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once, then what ``receive`` gives (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
