"""Precomputed answers (``kgrec precompute``): the default-parameter answers of every product
and user, computed once and stored beside the run, so ``kgrec serve`` sends them without
scoring anything.

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
new users and products, explanations) is computed live. The answers are always those of the
exact search, also when the server runs ``--approximate``.

Layout of ``answers/`` (:data:`ANSWERS_DIR`, inside the run folder):

* ``manifest.json``: format version, :func:`answers_key`, ``k``, the cross-category level,
  counts, kgrec version, how long the computation took;
* ``{op}.bin`` (``op`` in :data:`OPERATIONS`): one zlib block per query, its records' JSON
  joined by ``,``, in the order of ``index.product_ids`` (related) or ``index.user_ids``;
* ``index.safetensors``: ``{op}.offsets`` (uint64, ``n + 1``) where each block starts, and
  ``{op}.ends`` (uint32, ``(n, k)``) where record ``r`` ends in the decompressed block (the
  block's length past its last record; :data:`LIVE` in column 0 for a query that is answered
  live because it raised ``ValueError`` when precomputed).

:func:`answers_key` covers the model's arrays, the graph's fingerprint, the weights and the
kgrec version; :meth:`AnswerStore.open` refuses a store made for another key
(:class:`StaleAnswersError`), so a store never answers for a model or graph it was not made from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import mmap
import shutil
import tempfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kg import __version__

if TYPE_CHECKING:
    from kg.query.recommender import Recommender

__all__ = [
    "ANSWERS_DIR",
    "JSON_ENCODER",
    "LIVE",
    "OPERATIONS",
    "AnswerStore",
    "StaleAnswersError",
    "answers_key",
    "precompute_answers",
]

#: The store's folder inside a run folder.
ANSWERS_DIR = "answers"
#: The stored operations: ``related`` by product, the other two by user.
OPERATIONS = ("related", "recommend", "cross_category")
#: ``ends[q, 0]`` of a query answered live (its precomputation raised ``ValueError``).
LIVE = np.iinfo(np.uint32).max
FORMAT_VERSION = 1
#: Queries per task of a worker process.
_CHUNK = 256

#: The HTTP API's JSON encoding (FastAPI's ``JSONResponse`` settings, without the
#: circular-reference check: payloads are fresh trees of dicts and lists, and the check costs
#: about 15% of the encoding). Stored records use it too, so they are the live bytes.
JSON_ENCODER = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), check_circular=False
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
#: The recommender and k of the forked workers (set in the parent before the pool forks).
_JOB: tuple[Recommender, int] | None = None


def _answer(rec: Recommender, op: str, query: str, k: int) -> list[Any]:
    if op == "related":
        return rec.related(query, k)
    if op == "recommend":
        return rec.recommend(query, k)
    return rec.cross_category(query, k)


def _chunk(task: tuple[str, int, int]) -> tuple[list[bytes], np.ndarray]:
    """The blocks and record ends of queries ``lo..hi`` of operation ``op``."""
    assert _JOB is not None
    rec, k = _JOB
    op, lo, hi = task
    ids = rec.index.product_ids if op == "related" else rec.index.user_ids
    blocks, ends = [], np.zeros((hi - lo, k), np.uint32)
    encode = JSON_ENCODER.encode
    for row, query in enumerate(ids[lo:hi]):
        try:
            records = [encode(r.to_dict()).encode("utf-8") for r in _answer(rec, op, query, k)]
        except ValueError:
            ends[row, 0] = LIVE
            blocks.append(b"")
            continue
        block = b",".join(records)
        if records:
            lengths = np.fromiter((len(r) + 1 for r in records), np.int64, len(records))
            ends[row, : len(records)] = np.cumsum(lengths) - 1
            ends[row, len(records) :] = len(block)
        blocks.append(zlib.compress(block, 6))
    return blocks, ends


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
    module docstring) in ``run_folder/answers``; atomic (a temporary sibling folder replaces it
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
    from safetensors.numpy import save_file
    from tqdm.auto import tqdm

    from kg.serve_run import check_workers

    global _JOB
    if rec.approximate is not None:
        raise ValueError("precomputed answers are those of the exact search: load without "
                         "approximate=")  # fmt: skip
    rec._check_k(k)
    check_workers(workers)
    folder = Path(run_folder) / ANSWERS_DIR
    key = answers_key(rec)
    if not force and (folder / "manifest.json").exists():
        try:
            old = json.loads((folder / "manifest.json").read_text())
        except ValueError:
            old = {}
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
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{ANSWERS_DIR}.", dir=folder.parent))
    start = time.perf_counter()
    _JOB = (rec, k)
    files = {op: (tmp / f"{op}.bin").open("wb") for op in OPERATIONS}
    try:
        arrays: dict[str, np.ndarray] = {}
        offsets: dict[str, list[int]] = {op: [0] for op in OPERATIONS}
        ends: dict[str, list[np.ndarray]] = {op: [] for op in OPERATIONS}
        with tqdm(
            total=sum(sizes.values()), desc="answers", unit="query", disable=not show_progress
        ) as bar:
            for (op, lo, hi), (blocks, chunk_ends) in zip(tasks, _run(tasks, workers), strict=True):
                for block in blocks:
                    files[op].write(block)
                    offsets[op].append(offsets[op][-1] + len(block))
                ends[op].append(chunk_ends)
                bar.update(hi - lo)
        for op in OPERATIONS:
            files[op].close()
            arrays[f"{op}.offsets"] = np.asarray(offsets[op], np.uint64)
            arrays[f"{op}.ends"] = (
                np.concatenate(ends[op]) if ends[op] else np.zeros((0, k), np.uint32)
            )
        save_file(arrays, str(tmp / "index.safetensors"))
        manifest = {
            "format_version": FORMAT_VERSION,
            "key": key,
            "k": k,
            "level": ix.branching_level,
            "counts": sizes,
            "live": {op: int((arrays[f"{op}.ends"][:, 0] == LIVE).sum()) for op in OPERATIONS},
            "bytes": sum((tmp / f"{op}.bin").stat().st_size for op in OPERATIONS),
            "seconds": round(time.perf_counter() - start, 1),
            "workers": workers,
            "kgrec_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    finally:
        _JOB = None
        for f in files.values():
            f.close()
        if tmp.exists():
            shutil.rmtree(tmp)
    return {**manifest, "reused": False}


def _run(
    tasks: list[tuple[str, int, int]], workers: int
) -> Iterator[tuple[list[bytes], np.ndarray]]:
    """``_chunk`` of each task in order, in this process or in ``workers`` forked ones."""
    if workers == 1:
        yield from map(_chunk, tasks)
        return
    import multiprocessing

    from kg.serve_run import limit_blas

    fork = multiprocessing.get_context("fork")
    with fork.Pool(workers, initializer=limit_blas, initargs=(1,)) as pool:
        yield from pool.imap(_chunk, tasks)


# ------------------------------------------------------------------------------ reading
class AnswerStore:
    """A store written by :func:`precompute_answers`, memory-mapped (forked server workers
    share its pages).

    Attributes:
        k: records stored per answer.
        level: the cross-category level of the stored answers.
        manifest: ``manifest.json``.
    """

    def __init__(self, folder: Path, manifest: dict[str, Any]) -> None:
        from safetensors.numpy import load_file

        self.manifest = manifest
        self.k = int(manifest["k"])
        self.level = int(manifest["level"])
        index = load_file(str(folder / "index.safetensors"))
        self._offsets = {op: index[f"{op}.offsets"] for op in OPERATIONS}
        self._ends = {op: index[f"{op}.ends"] for op in OPERATIONS}
        self._maps: dict[str, mmap.mmap | bytes] = {}
        for op in OPERATIONS:
            with (folder / f"{op}.bin").open("rb") as f:
                size = f.seek(0, 2)
                self._maps[op] = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""

    @classmethod
    def open(cls, run_folder: str | Path, rec: Recommender) -> AnswerStore | None:
        """The store of ``run_folder``, or ``None`` when it has none.

        Raises:
            StaleAnswersError: the store was made for another model, graph, weights or
                kgrec version than ``rec``'s (:func:`answers_key`), or by another format.
        """
        folder = Path(run_folder) / ANSWERS_DIR
        if not (folder / "manifest.json").exists():
            return None
        manifest = json.loads((folder / "manifest.json").read_text())
        if manifest.get("format_version") != FORMAT_VERSION or manifest.get("key") != answers_key(
            rec
        ):
            raise StaleAnswersError(
                f"{folder} was precomputed for another model, graph, score weights or kgrec version"
            )
        return cls(folder, manifest)

    def items(self, op: str, query: int, k: int) -> bytes | None:
        """The first ``k`` records of query ``query``'s answer to ``op`` as JSON joined by
        ``,`` (the inside of the response's ``items`` list), or ``None`` when it must be
        computed live (``k`` above :attr:`k`, or no stored answer)."""
        ends = self._ends[op][query]
        if k > self.k or ends[0] == LIVE:
            return None
        end = int(ends[k - 1])
        if end == 0:
            return b""
        offsets = self._offsets[op]
        block = self._maps[op][int(offsets[query]) : int(offsets[query + 1])]
        return zlib.decompress(block)[:end]

    def close(self) -> None:
        """Unmap the files."""
        for m in self._maps.values():
            if isinstance(m, mmap.mmap):
                m.close()
