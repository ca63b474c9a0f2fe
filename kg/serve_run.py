"""Running the HTTP API: ``kgrec serve [--workers N]``.

One uvicorn server per worker process. The parent loads the recommender once, binds the
address (so a taken port fails at once), then forks the workers (POSIX only), so they share the
loaded arrays copy-on-write; ``SIGTERM``/``SIGINT`` sent to the parent is passed on to every
worker and the parent exits once all have stopped. With one worker everything runs in the
calling process.

Where the system has ``SO_REUSEPORT`` (Linux), each worker listens on its own socket bound to
the same address and the kernel spreads new connections evenly over them. With one shared
listening socket, the first worker to wake accepts a whole burst of new connections (asyncio
accepts up to its backlog at once), so keep-alive clients that connect together can pile up on
one worker while the other idles: with 32 such clients on 2 workers we measured anywhere
between 280 and 846 requests/s from run to run. Elsewhere the workers share one socket.

Each worker answers one request at a time (the query layer is numpy work that holds the GIL
for most of a request), so ``--workers`` should be about the number of cores the server may use.
numpy's BLAS (the scan over all product vectors) starts one thread per core in every process,
so with several workers the threads outnumber the cores and spin against each other: with 2
workers on 2 cores we measured 210 requests/s with the default threads against 570 with one
each. ``blas_threads`` sets each worker's BLAS threads (``kgrec serve`` passes cores divided by
workers unless ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` or ``MKL_NUM_THREADS`` is set).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from typing import Any

__all__ = ["check_workers", "current_blas_threads", "limit_blas", "run_server", "usable_cores"]


def _die_with_parent() -> None:
    """Ask Linux to send this process SIGTERM when its parent dies (no orphaned workers when
    the parent is killed outright); a no-op elsewhere."""
    import ctypes
    import sys

    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def check_workers(workers: int) -> None:
    """Raise ``ValueError`` unless ``workers`` processes can run here: at least 1, and more
    than one only where processes can fork."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers > 1 and not hasattr(os, "fork"):
        raise ValueError("more than one worker needs os.fork (POSIX)")


def limit_blas(threads: int | None) -> None:
    """Set this process's BLAS threads (after a fork: each worker sets its own); ``None``
    leaves them as they are."""
    if threads is not None:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads, user_api="blas")


def usable_cores() -> int:
    """The CPUs this process may run on (its affinity where the OS has one), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def current_blas_threads() -> int | None:
    """The most threads a BLAS library loaded in this process uses, or ``None`` if none is."""
    from threadpoolctl import threadpool_info

    counts = [int(lib["num_threads"]) for lib in threadpool_info() if lib["user_api"] == "blas"]
    return max(counts) if counts else None


def _bound(family: int, host: str, port: int, *, reuse_port: bool) -> socket.socket:
    """A TCP socket bound to ``host:port`` (not listening yet)."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def run_server(
    app: Any,
    *,
    host: str,
    port: int,
    workers: int = 1,
    log_level: str = "info",
    blas_threads: int | None = None,
) -> int:
    """Serve ``app`` on ``host:port`` with ``workers`` processes until stopped.

    Args:
        app: the ASGI application (:func:`kg.serve.create_app`).
        host: listen address.
        port: TCP port.
        workers: worker processes (>= 1; more than one needs ``os.fork``).
        log_level: uvicorn's log level.
        blas_threads: numpy BLAS threads of each worker (threadpoolctl); ``None`` leaves them
            as they are.

    Returns:
        0 when every worker stopped cleanly, else the first non-zero exit status.

    Raises:
        ValueError: ``workers`` < 1 or ``blas_threads`` < 1, or ``workers`` > 1 where processes
            cannot fork.
        OSError: the address cannot be bound.
    """
    import uvicorn

    check_workers(workers)
    if blas_threads is not None and blas_threads < 1:
        raise ValueError(f"blas_threads must be >= 1, got {blas_threads}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    reuse_port = workers > 1 and hasattr(socket, "SO_REUSEPORT")
    sock = _bound(family, host, port, reuse_port=reuse_port)
    port = sock.getsockname()[1]  # the port chosen for port 0, so every worker binds the same
    if not reuse_port:
        sock.listen(2048)
        sock.set_inheritable(True)
    config = uvicorn.Config(app, log_level=log_level)
    if workers == 1:
        limit_blas(blas_threads)
        with sock:
            uvicorn.Server(config).run(sockets=[sock])
        return 0
    children: list[int] = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # a worker: serve until signalled, never return into the caller's code
            code = 1
            try:
                _die_with_parent()
                limit_blas(blas_threads)
                if reuse_port:  # its own listening socket; the parent's bound one never listens
                    sock.close()
                    sock = _bound(family, host, port, reuse_port=True)
                    sock.listen(2048)
                uvicorn.Server(config).run(sockets=[sock])
                code = 0
            finally:
                os._exit(code)
        children.append(pid)
    sock.close()

    def forward(signum: int, _frame: Any) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    stops = (signal.SIGTERM, signal.SIGINT)
    previous = {s: signal.signal(s, forward) for s in stops}
    status = 0
    try:
        for pid in children:
            _, raw = os.waitpid(pid, 0)
            code = os.waitstatus_to_exitcode(raw)
            # uvicorn re-raises the stop signal after its graceful shutdown: that is clean.
            status = status or (0 if -code in stops else code)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return status
