"""The web app behind ``kgrec browse``: the page, its assets, the recipes and the login.

The page itself talks to Neo4j directly, with the official JavaScript driver over Bolt on a
WebSocket; this app only serves files and two small JSON answers:

* ``GET /api/config``: the Bolt URI, user and database to connect to, and the shipped recipes
  with their parameters;
* ``POST /api/login`` with ``{"token": ...}``: the password, when the token is the one
  ``kgrec browse`` printed (in the URL's ``#fragment``, which browsers never send to a server).
  Any local user can reach a loopback port, so the password is never handed out without it.

Every answer carries a Content-Security-Policy that lets the page load nothing but its own
files and connect nowhere but to this app and the Neo4j server; requests whose ``Host`` is not
loopback are refused (no DNS rebinding).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kg.neo4j.settings import Neo4jSettings

__all__ = [
    "EXPAND_LIMIT",
    "EXPAND_QUERY",
    "STATIC_DIR",
    "AssetsMissingError",
    "create_app",
    "websocket_origin",
]

#: What a click on a node adds to the graph: its relationships and neighbours, at most
#: ``$limit`` of them (the page runs it with the node's element id and :data:`EXPAND_LIMIT`).
EXPAND_QUERY = """MATCH (n)-[r]-(m) WHERE elementId(n) = $id
RETURN n, r, m ORDER BY elementId(r) LIMIT $limit"""
EXPAND_LIMIT = 25

STATIC_DIR = Path(__file__).resolve().parent / "static"
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
_SECURE_SCHEMES = ("neo4j+s", "neo4j+ssc", "bolt+s", "bolt+ssc")
# The one <style> element cytoscape.js puts into the page; the policy allows it by its hash
# rather than allowing every inline style.
_CYTOSCAPE_STYLE = ".__________cytoscape_container { position: relative; }"
_CYTOSCAPE_STYLE_HASH = "sha256-" + base64.b64encode(
    hashlib.sha256(_CYTOSCAPE_STYLE.encode()).digest()
).decode("ascii")


class AssetsMissingError(RuntimeError):
    """The page's assets have not been built (``scripts/setup.sh`` builds them with npm)."""


def websocket_origin(uri: str) -> str:
    """The WebSocket origin the browser driver opens for a Bolt ``uri``.

    ``bolt://127.0.0.1:7687`` gives ``ws://127.0.0.1:7687``; the ``+s`` schemes give ``wss``.
    """
    parts = urlsplit(uri)
    scheme = "wss" if parts.scheme in _SECURE_SCHEMES else "ws"
    port = parts.port or 7687
    return f"{scheme}://{parts.hostname}:{port}"


def _recipes() -> list[dict[str, Any]]:
    from kg.cypher import recipes

    return [
        {
            "name": r.name,
            "version": r.version,
            "description": r.description,
            "text": r.text,
            "parameters": [
                {
                    "name": p.name,
                    "type": p.type,
                    "description": p.description,
                    "default": p.default,
                }
                for p in r.declared
            ],
        }
        for r in recipes()
    ]


def create_app(settings: Neo4jSettings, token: str, static_dir: Path = STATIC_DIR) -> Any:
    """The Starlette app of ``kgrec browse``.

    Args:
        settings: the Neo4j server the page connects to (its password is handed to the page
            only with ``token``).
        token: the secret of this run; the page sends it back from the URL's fragment.
        static_dir: the built assets (``index.html``, ``app.js``, ``app.css``).

    Returns:
        An ASGI app; serve it on loopback only.

    Raises:
        AssetsMissingError: ``static_dir`` has no built page.
    """
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    index = static_dir / "index.html"
    if not index.is_file() or not (static_dir / "app.js").is_file():
        raise AssetsMissingError(
            f"the page of kgrec browse is not built ({static_dir} has no index.html/app.js): "
            "run scripts/setup.sh (it builds it with npm)"
        )
    policy = (
        "default-src 'self'; "
        f"connect-src 'self' {websocket_origin(settings.uri)}; "
        f"img-src 'self' data:; style-src 'self' '{_CYTOSCAPE_STYLE_HASH}'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    )
    config = {
        "uri": settings.uri,
        "user": settings.user,
        "database": settings.database,
        "auth": settings.user is not None,
        "recipes": _recipes(),
        "expand": {"query": EXPAND_QUERY, "limit": EXPAND_LIMIT},
    }

    async def page(request: Request) -> Response:
        return FileResponse(index, headers={"cache-control": "no-store"})

    async def get_config(request: Request) -> Response:
        return JSONResponse(config)

    async def login(request: Request) -> Response:
        try:
            sent = (await request.json()).get("token", "")
        except (ValueError, AttributeError):
            sent = ""
        if not isinstance(sent, str) or not secrets.compare_digest(sent, token):
            return JSONResponse(
                {"error": "wrong or missing token: open the URL kgrec browse printed"},
                status_code=403,
            )
        return JSONResponse({"password": settings.password or ""})

    async def headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers["content-security-policy"] = policy
        response.headers["x-content-type-options"] = "nosniff"
        response.headers["referrer-policy"] = "no-referrer"
        return response

    app = Starlette(
        routes=[
            Route("/", page),
            Route("/api/config", get_config),
            Route("/api/login", login, methods=["POST"]),
            Mount("/static", StaticFiles(directory=static_dir)),
        ],
        middleware=[
            Middleware(TrustedHostMiddleware, allowed_hosts=list(_LOOPBACK_HOSTS)),
            Middleware(BaseHTTPMiddleware, dispatch=headers),
        ],
    )
    return app
