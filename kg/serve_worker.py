"""The worker class of ``kgrec serve`` (:mod:`kg.serve_run`), named to gunicorn by its dotted
path: gunicorn's ``uvicorn_worker.UvicornWorker``, without uvicorn's ``Server`` header."""

from __future__ import annotations

from typing import Any, ClassVar

from uvicorn_worker import UvicornWorker

__all__ = ["Worker"]


class Worker(UvicornWorker):
    """An asyncio worker running uvicorn (uvloop and httptools where installed)."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        "loop": "auto",
        "http": "auto",
        "server_header": False,
    }
