"""Precomputed answers (``kgrec precompute``): the default-parameter answers of every product
and user, computed once and stored beside the run in an SQLite file, so ``kgrec serve`` sends
them without scoring anything.

An answer is a pure function of the model, the graph, the score weights and the code, none of
which changes while a recommender is loaded, so it can be computed ahead of the request. The
store holds, as the JSON records the HTTP API sends:

* ``related(p, k)`` of every product ``p``;
* ``recommend(u, k)`` and ``cross_category(u, k)`` (default level) of every user ``u``.

A request with other parameters at their defaults and any ``k`` up to the stored ``k`` gets the
first ``k`` stored records: the ranking's order is total (score, then product index: see
:func:`kg.query._results.top_k`), so the first ``k`` of a top-``K`` list are the top ``k``, and
the records do not depend on ``k``. The tests check that the bytes equal the live answer's for
every product, user and ``k``. Any other request (filters, exclusions, paths, a larger ``k``,
new users and products, explanations), and any answer the store does not hold, is computed
live. The answers are always those of the exact search, also when the server runs
``--approximate``.

Answers are invalidated per key (:meth:`AnswerStore.invalidate`,
:meth:`~AnswerStore.invalidate_products`, :meth:`~AnswerStore.invalidate_users`): an
invalidated answer is deleted from the file, and every server process reading it computes
that answer live from then on.

``RUN/answers.sqlite`` (:data:`ANSWERS_FILE`): a table ``answers(op, id, items, ends)`` keyed by
operation and product or user id, where ``items`` is the answer's records' JSON joined by
``,``, zlib-compressed, and ``ends`` (``k`` little-endian uint32) where record ``r`` ends in it
(its length past the last record); and a table ``meta`` with the manifest: format version,
:func:`answers_key`, ``k``, the cross-category level, counts, kgrec version, how long the
computation took. A query that raises ``ValueError`` when precomputed has no row (answered
live).

:func:`answers_key` covers the model's arrays, the graph's fingerprint, the weights and the
kgrec version; :meth:`AnswerStore.open` refuses a store made for another key
(:class:`StaleAnswersError`), so a store never answers for a model or graph it was not made from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sqlite3
import tempfile
import time
import traceback
import zlib
from collections.abc import Iterable, Iterator
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kg import __version__

if TYPE_CHECKING:
    from kg.query.recommender import Recommender

__all__ = [
    "ANSWERS_FILE",
    "JSON_ENCODER",
    "OPERATIONS",
    "AnswerStore",
    "StaleAnswersError",
    "answers_key",
    "precompute_answers",
]

#: The store's file inside a run folder.
ANSWERS_FILE = "answers.sqlite"
#: The stored operations: ``related`` by product, the other two by user.
OPERATIONS = ("related", "recommend", "cross_category")
FORMAT_VERSION = 2
#: Queries per task of a worker process.
_CHUNK = 256

#: The HTTP API's JSON encoding (FastAPI's ``JSONResponse`` settings, without the
#: circular-reference check: payloads are fresh trees of dicts and lists, and the check costs
#: about 15% of the encoding). Stored records use it too, so they are the live bytes.
JSON_ENCODER = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), check_circular=False
)

_SCHEMA = (
    "CREATE TABLE answers (op TEXT NOT NULL, id TEXT NOT NULL, items BLOB NOT NULL, "
    "ends BLOB NOT NULL, PRIMARY KEY (op, id)) WITHOUT ROWID",
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)


class StaleAnswersError(ValueError):
    """A store that was precomputed for another model, graph, weights or kgrec version."""


def answers_key(rec: Recommender) -> str:
    """SHA-256 of everything an answer depends on: the model's arrays and settings, the
    graph's fingerprint (:meth:`~ingest.tables.GraphTables.fingerprint`), the score weights,
    ``explain_history``, the store format and the kgrec version. About 1-2 s at 100k products."""
    digest = hashlib.sha256()
    model = rec.model
    for field in dataclasses.fields(model):
        value = getattr(model, field.name)
        digest.update(field.name.encode())
        for part in _parts(value):
            digest.update(part)
    settings = {
        "tables": rec.tables.fingerprint(),
        "weights": dataclasses.asdict(rec.weights),
        "explain_history": rec.explain_history,
        "format": FORMAT_VERSION,
        "kgrec": __version__,
    }
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()


def _parts(value: Any) -> Iterator[bytes]:
    """Bytes that identify ``value``: arrays by dtype, shape and data; sparse matrices by
    their three arrays; dicts of arrays item by item; anything else as sorted JSON."""
    if isinstance(value, np.ndarray):
        yield f"{value.dtype.str}{value.shape}".encode()
        yield np.ascontiguousarray(value).tobytes()
    elif hasattr(value, "indptr"):  # scipy CSR
        for name in ("shape", "data", "indices", "indptr"):
            yield from _parts(np.asarray(getattr(value, name)))
    elif isinstance(value, dict) and any(isinstance(v, np.ndarray) for v in value.values()):
        for key in sorted(value):
            yield str(key).encode()
            yield from _parts(value[key])
    else:
        yield json.dumps(value, sort_keys=True, default=str).encode()


# ------------------------------------------------------------------------------ writing
#: One row of the answers table: ``(op, id, items, ends)``.
Row = tuple[str, str, bytes, bytes]


def _answer(rec: Recommender, op: str, query: str, k: int) -> list[Any]:
    if op == "related":
        return rec.related(query, k)
    if op == "recommend":
        return rec.recommend(query, k)
    return rec.cross_category(query, k)


def _rows(rec: Recommender, k: int, task: tuple[str, int, int]) -> list[Row]:
    """The rows of queries ``lo..hi`` of operation ``op`` (``task``)."""
    op, lo, hi = task
    ids = rec.index.product_ids if op == "related" else rec.index.user_ids
    encode = JSON_ENCODER.encode
    rows = []
    for query in ids[lo:hi]:
        try:
            records = [encode(r.to_dict()).encode("utf-8") for r in _answer(rec, op, query, k)]
        except ValueError:
            continue  # no row: answered live
        block = b",".join(records)
        ends = np.full(k, len(block), "<u4")
        if records:
            lengths = np.fromiter((len(r) + 1 for r in records), np.int64, len(records))
            ends[: len(records)] = np.cumsum(lengths) - 1
        rows.append((op, query, zlib.compress(block, 6), ends.tobytes()))
    return rows


def _worker(rec: Recommender, k: int, tasks: list[tuple[str, int, int]], out: Connection) -> None:
    """A forked worker: one BLAS thread, the rows of each task sent to ``out``, then
    ``None``; an error is sent as its traceback text."""
    from kg.serve_run import limit_blas

    try:
        limit_blas(1)
        for task in tasks:
            out.send((task, _rows(rec, k, task)))
        out.send(None)
    except BaseException:
        out.send(traceback.format_exc())
    finally:
        out.close()


def _computed(
    rec: Recommender, k: int, tasks: list[tuple[str, int, int]], workers: int
) -> Iterator[tuple[tuple[str, int, int], list[Row]]]:
    """``(task, rows)`` of every task, computed here or in ``workers`` forked processes (each
    gets every ``workers``-th task; the recommender is inherited, not copied), in the order
    they finish."""
    if workers == 1:
        for task in tasks:
            yield task, _rows(rec, k, task)
        return
    import multiprocessing

    fork = multiprocessing.get_context("fork")
    pipes, procs = [], []
    for w in range(workers):
        receive, send = fork.Pipe(duplex=False)
        proc = fork.Process(target=_worker, args=(rec, k, tasks[w::workers], send), daemon=True)
        proc.start()
        send.close()
        pipes.append(receive)
        procs.append(proc)
    try:
        while pipes:
            for conn in wait(pipes):
                assert isinstance(conn, Connection)
                try:
                    message = conn.recv()
                except EOFError:
                    raise RuntimeError("a precompute worker died (out of memory?)") from None
                if isinstance(message, str):
                    raise RuntimeError(f"a precompute worker failed:\n{message}")
                if message is None:
                    pipes.remove(conn)
                    conn.close()
                else:
                    yield message
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
            proc.join()


def precompute_answers(
    rec: Recommender,
    run_folder: str | Path,
    *,
    k: int = 10,
    workers: int = 1,
    force: bool = False,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Compute and store the default-parameter answers of every product and user (see the
    module docstring) in ``run_folder/answers.sqlite``; atomic (a temporary file replaces it
    once complete) and idempotent (a store with the same key and at least ``k`` is kept).

    Args:
        rec: the run's recommender, with exact search.
        run_folder: the run folder ``rec`` was loaded from (the store goes inside).
        k: records stored per answer (requests with ``k`` up to this are served from it).
        workers: processes (forked after ``rec`` is loaded; more than one needs ``os.fork``),
            each with one BLAS thread.
        force: recompute even when the store is up to date.
        show_progress: a tqdm bar over queries.

    Returns:
        the store's manifest, with ``"reused": True`` when it was up to date.

    Raises:
        ValueError: approximate search, ``k`` outside ``1..n_products`` or ``workers`` < 1.
    """
    from tqdm.auto import tqdm

    from kg.serve_run import check_workers

    if rec.approximate is not None:
        raise ValueError("precomputed answers are those of the exact search: load without "
                         "approximate=")  # fmt: skip
    rec._check_k(k)
    check_workers(workers)
    path = Path(run_folder) / ANSWERS_FILE
    key = answers_key(rec)
    if not force and path.exists():
        old = _manifest(path)
        same = old.get("key") == key and old.get("format_version") == FORMAT_VERSION
        if same and int(old.get("k", 0)) >= k:
            return {**old, "reused": True}
    ix = rec.index
    sizes = {"related": ix.n_products, "recommend": len(ix.user_ids)}
    sizes["cross_category"] = sizes["recommend"]
    tasks = [
        (op, lo, min(lo + _CHUNK, sizes[op]))
        for op in OPERATIONS
        for lo in range(0, sizes[op], _CHUNK)
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{ANSWERS_FILE}.", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    start = time.perf_counter()
    stored = dict.fromkeys(OPERATIONS, 0)
    try:
        with sqlite3.connect(tmp) as db:
            db.execute("PRAGMA journal_mode=OFF")  # a new file, replaced whole on failure
            for statement in _SCHEMA:
                db.execute(statement)
            total = sum(sizes.values())
            with tqdm(total=total, desc="answers", unit="query", disable=not show_progress) as bar:
                for (op, lo, hi), rows in _computed(rec, k, tasks, workers):
                    db.executemany("INSERT INTO answers VALUES (?, ?, ?, ?)", rows)
                    stored[op] += len(rows)
                    bar.update(hi - lo)
            manifest = {
                "format_version": FORMAT_VERSION,
                "key": key,
                "k": k,
                "level": ix.branching_level,
                "counts": sizes,
                "live": {op: sizes[op] - stored[op] for op in OPERATIONS},
                "seconds": round(time.perf_counter() - start, 1),
                "workers": workers,
                "kgrec_version": __version__,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            db.execute("INSERT INTO meta VALUES ('manifest', ?)", (json.dumps(manifest),))
        db.close()
        manifest["bytes"] = tmp.stat().st_size
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return {**manifest, "reused": False}


def _manifest(path: Path) -> dict[str, Any]:
    """The manifest of the store at ``path`` (empty when it cannot be read)."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            (value,) = db.execute("SELECT value FROM meta WHERE key = 'manifest'").fetchone()
        db.close()
        return dict(json.loads(value))
    except (sqlite3.Error, TypeError, ValueError):
        return {}


# ------------------------------------------------------------------------------ reading
class AnswerStore:
    """A store written by :func:`precompute_answers`. Each process opens its own read-only
    connection on first use (forked server workers must not share one).

    Attributes:
        path: the SQLite file.
        k: records stored per answer.
        level: the cross-category level of the stored answers.
        manifest: what :func:`precompute_answers` recorded.
    """

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest
        self.k = int(manifest["k"])
        self.level = int(manifest["level"])
        self._db: sqlite3.Connection | None = None
        self._pid = -1

    @classmethod
    def open(cls, run_folder: str | Path, rec: Recommender) -> AnswerStore | None:
        """The store of ``run_folder``, or ``None`` when it has none.

        Raises:
            StaleAnswersError: the store was made for another model, graph, weights or
                kgrec version than ``rec``'s (:func:`answers_key`), or by another format.
        """
        path = Path(run_folder) / ANSWERS_FILE
        if not path.exists():
            return None
        manifest = _manifest(path)
        if manifest.get("format_version") != FORMAT_VERSION or manifest.get("key") != answers_key(
            rec
        ):
            raise StaleAnswersError(
                f"{path} was precomputed for another model, graph, score weights or kgrec version"
            )
        return cls(path, manifest)

    def _reader(self) -> sqlite3.Connection:
        if self._db is None or self._pid != os.getpid():
            uri = f"file:{self.path}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
            self._pid = os.getpid()
        return self._db

    def items(self, op: str, query: str, k: int) -> bytes | None:
        """The first ``k`` records of the answer to ``op`` for the product or user ``query``
        as JSON joined by ``,`` (the inside of the response's ``items`` list), or ``None``
        when it must be computed live (``k`` above :attr:`k`, or no stored answer)."""
        if k > self.k:
            return None
        row = (
            self._reader()
            .execute("SELECT items, ends FROM answers WHERE op = ? AND id = ?", (op, query))
            .fetchone()
        )
        if row is None:
            return None
        end = memoryview(row[1]).cast("I")[k - 1]
        return zlib.decompress(row[0])[:end] if end else b""

    def invalidate(self, op: str, ids: Iterable[str]) -> int:
        """Delete the stored answers to ``op`` (one of :data:`OPERATIONS`) of these product or
        user ids, so they are computed live by every process reading the store; the number
        deleted."""
        if op not in OPERATIONS:
            raise ValueError(f"op must be one of {OPERATIONS}, got {op!r}")
        rows = [(op, i) for i in ids]
        with sqlite3.connect(self.path, timeout=30) as db:
            deleted = db.executemany("DELETE FROM answers WHERE op = ? AND id = ?", rows).rowcount
        db.close()
        return int(deleted)

    def invalidate_products(self, ids: Iterable[str]) -> int:
        """:meth:`invalidate` the related products of these products."""
        return self.invalidate("related", ids)

    def invalidate_users(self, ids: Iterable[str]) -> int:
        """:meth:`invalidate` the recommendations and cross-category recommendations of these
        users."""
        users = list(ids)
        return self.invalidate("recommend", users) + self.invalidate("cross_category", users)

    def close(self) -> None:
        """Close this process's connection."""
        if self._db is not None:
            self._db.close()
            self._db = None
