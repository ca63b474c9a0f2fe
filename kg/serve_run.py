"""Running the HTTP API: ``kgrec serve [--workers N]`` under gunicorn with uvicorn workers.

The calling process loads the recommender, builds the app and becomes gunicorn's master
(``preload_app``): each worker is forked from it and shares the loaded arrays copy-on-write. A
worker that dies is replaced by a new fork of the master. ``SIGTERM`` to the master stops every
worker gracefully (each finishes its requests, at most :attr:`ServeConfig.graceful_timeout`
seconds), ``SIGINT`` (Ctrl-C) at once; workers also stop when the master is killed outright.
The workers are ``uvicorn_worker.UvicornWorker`` (uvloop and httptools where installed).

The workers share the master's listening socket (gunicorn's default): when a worker dies,
the connections queued for it stay in the shared queue and the other workers take them.
:attr:`ServeConfig.reuse_port` (``--reuse-port``) gives each worker its own ``SO_REUSEPORT``
socket instead, as the hand-written loop before it did, and the kernel spreads new connections
over them by hash; but a worker killed outright then resets what was queued on its socket
(the SIGKILL test in ``tests/kg/test_serve_workers.py`` saw resets with it, and none with the
shared socket). The old loop's notes had keep-alive clients that connect together piling up
on one worker with a shared socket (280 to 846 requests/s from run to run, 32 clients, 2
workers); under gunicorn with uvicorn workers, on a busy 2-core machine, both settings spread
the load evenly (the busiest worker used 1.01-1.19 times the workers' mean CPU) at the same
throughput: ``bench/bench_query.py --compare-with`` measures both.

Each worker answers one request at a time (the query layer is numpy work that holds the GIL
for most of a request), so ``--workers`` should be about the number of cores the server may use.
numpy's BLAS (the scan over all product vectors) starts one thread per core in every process,
so with several workers the threads outnumber the cores and spin against each other: with 2
workers on 2 cores we measured 210 requests/s with the default threads against 570 with one
each. Each worker sets its BLAS threads after the fork (gunicorn's ``post_fork`` hook):
:func:`blas_threads_per_worker`, and one torch thread (:func:`one_torch_thread_after_fork`).
"""

from __future__ import annotations

import os
import signal
import socket
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ServeConfig",
    "blas_threads_per_worker",
    "check_workers",
    "current_blas_threads",
    "limit_blas",
    "one_torch_thread_after_fork",
    "run_server",
    "usable_cores",
]

#: Environment variables that set the BLAS threads; with one set, workers keep what it says.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class ServeConfig:
    """How ``kgrec serve`` runs (the options of ``kgrec serve`` are generated from it).

    Attributes:
        host: listen address (loopback by default: put a proxy in front to expose it).
        port: TCP port.
        workers: worker processes forked after the model is loaded once (about one per core).
        blas_threads: numpy BLAS threads per worker; ``None``: the cores divided by the workers
            (at least 1), unless ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` or
            ``MKL_NUM_THREADS`` is set.
        log_level: the server log's level (critical, error, warning, info, debug).
        keepalive: seconds an idle keep-alive connection stays open.
        graceful_timeout: seconds workers get to finish their requests after ``SIGTERM``.
        reuse_port: each worker listens on its own ``SO_REUSEPORT`` socket where the system
            has it, instead of sharing the master's (see the module docstring).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    blas_threads: int | None = None
    log_level: str = "info"
    keepalive: int = 5
    graceful_timeout: int = 30
    reuse_port: bool = False

    def __post_init__(self) -> None:
        check_workers(self.workers)
        if self.blas_threads is not None and self.blas_threads < 1:
            raise ValueError(f"blas_threads must be >= 1, got {self.blas_threads}")
        if not 0 <= self.port < 65536:
            raise ValueError(f"port must be between 0 and 65535, got {self.port}")
        if self.keepalive < 1 or self.graceful_timeout < 0:
            raise ValueError("keepalive must be >= 1 and graceful_timeout >= 0")
        if self.log_level not in ("critical", "error", "warning", "info", "debug"):
            raise ValueError(f"unknown log_level {self.log_level!r}")


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


def blas_threads_per_worker(config: ServeConfig) -> int | None:
    """The BLAS threads each worker sets: :attr:`ServeConfig.blas_threads`, else the usable
    cores divided by the workers (at least 1), or ``None`` (left as the environment says)
    when one of :data:`THREAD_VARIABLES` is set."""
    if config.blas_threads is not None:
        return config.blas_threads
    if any(os.environ.get(v) for v in THREAD_VARIABLES):
        return None
    return max(1, usable_cores() // config.workers)


def _die_with_parent() -> None:
    """Ask Linux to send this process SIGTERM when its parent dies (no orphaned workers when
    the master is killed outright); a no-op elsewhere."""
    import ctypes
    import sys

    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def one_torch_thread_after_fork() -> None:
    """One torch thread in a forked worker whose master has loaded torch (the preloaded text
    encoder). torch's CPU pool is GNU OpenMP's, which does not survive a fork: in a child of a
    process that ran a multi-threaded torch op, the first multi-threaded op hangs for good (a
    worker encoding a new product's text would stall its event loop). With one thread no pool
    is used, so the master may encode with every core before the fork. Where
    the master has not imported torch, the worker's first torch endpoint sets it
    (``kg.serve._one_torch_thread``)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != 1:
        torch.set_num_threads(1)


def _free_port(host: str, port: int) -> int:
    """``port``, after checking that nothing listens there (a taken port fails at once, in the
    master, and not in every worker); for port 0, a free port chosen by the system."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        return int(probe.getsockname()[1])


def _gunicorn_app(app: Any, options: dict[str, Any]) -> Any:
    """A gunicorn application serving the already loaded ``app`` with ``options``."""
    from gunicorn.app.base import BaseApplication

    class Application(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in options.items():
                if key in self.cfg.settings:  # settings of newer gunicorn versions only
                    self.cfg.set(key, value)

        def load(self) -> Any:
            return app

    return Application()


def run_server(app: Any, config: ServeConfig) -> int:
    """Serve ``app`` as :class:`ServeConfig` says until stopped (see the module docstring).

    Args:
        app: the ASGI application (:func:`kg.serve.create_app`).
        config: address, workers, threads, timeouts.

    Returns:
        gunicorn's exit status: 0 after ``SIGTERM`` or ``SIGINT``.

    Raises:
        OSError: the address cannot be bound.
    """
    port = _free_port(config.host, config.port)
    threads = blas_threads_per_worker(config)

    def post_fork(_server: Any, _worker: Any) -> None:
        _die_with_parent()
        limit_blas(threads)
        one_torch_thread_after_fork()

    host = f"[{config.host}]" if ":" in config.host else config.host
    options = {
        "bind": [f"{host}:{port}"],
        "workers": config.workers,
        "worker_class": "kg.serve_worker.Worker",
        "preload_app": True,
        # one worker: the master's socket keeps queueing connections while a dead worker is
        # replaced; several: one socket each (see the module docstring)
        "reuse_port": config.reuse_port and config.workers > 1 and hasattr(socket, "SO_REUSEPORT"),
        "keepalive": config.keepalive,
        "graceful_timeout": config.graceful_timeout,
        "loglevel": config.log_level,
        "post_fork": post_fork,
        "proc_name": "kgrec-serve",
        "control_socket_disable": True,  # no control socket in the home folder
    }
    try:
        _gunicorn_app(app, options).run()
    except SystemExit as stop:  # gunicorn's master exits through sys.exit
        code = stop.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0
