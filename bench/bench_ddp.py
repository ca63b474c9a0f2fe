"""One fusion epoch in one process against N data-parallel processes (``kgrec train --nproc``).

Each configuration runs in fresh processes (one, or N started by torchrun, gloo on CPU), the
configurations taking turns ``--repeats`` times: one process with torch's default threads (one
per core) and with one thread, N processes with one thread each. The table gives the median
over runs of each run's mean epoch time (graph building, validation and blend selection
excluded). N processes
are timed twice: with the same ``--batch-size`` per process (a global batch N times larger,
1/N of the steps: the speed-up) and with ``--batch-size / N`` per process (the one-process
optimisation exactly, same steps). Model: ``FusionConfig``'s defaults with id embeddings as
the product input (no text or KGE vectors: they add one linear layer over the products).
Writes the BENCHMARKS.md section "ddp".

    .venv/bin/python bench/bench_ddp.py --data amazon --nproc 2 --epochs 3 --repeats 2
    .venv/bin/python bench/bench_ddp.py --data demo --epochs 2 --repeats 1 --no-write
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import machine_line, write_section

if TYPE_CHECKING:
    from ingest.tables import GraphTables

HERE = Path(__file__).resolve()
AMAZON = HERE.parents[2] / "shared" / "data" / "amazon2018-industrial-scientific"


def _tables(data: str) -> GraphTables:
    from ingest.sources.amazon import read_amazon
    from ingest.sources.synthetic import SyntheticConfig, generate_shop

    if data == "amazon":
        return read_amazon(AMAZON, show_progress=False)
    return generate_shop(SyntheticConfig.preset(data), show_progress=False)


def worker(args: argparse.Namespace) -> None:
    """Train ``--epochs`` epochs (in this process, or as one rank of torchrun's group); rank 0
    writes the epoch times to ``--result``."""
    from gnn.distributed import join, leave
    from gnn.fusion import FusionRecommender
    from gnn.splits import leave_one_out

    ranks = join(os.environ, "cpu")
    tables = _tables(args.data)
    split = leave_one_out(tables)
    model = FusionRecommender(
        tables,
        use_text=False,
        use_kge=False,
        batch_size=args.batch_size,
        max_epochs=args.epochs,
        eval_every=args.epochs,
        valid_users=500,
        blend_grid=(0.0,),
        similarity_grid=(0.0,),
        device="cpu",
    )
    model.fit(split, seed=0, show_progress=False, ranks=ranks)
    if ranks is None or ranks.main:
        info = model.fit_info
        row = {
            "epoch_seconds_mean": info["epoch_seconds_mean"],
            "examples": int(sum(max(s.size - 1, 0) for s in split.train_sequences)),
            "stats": split.stats(),
            "valid_ndcg@10": info["best_valid_ndcg@10"],
        }
        Path(args.result).write_text(json.dumps(row))
    leave()


def _run(
    args: argparse.Namespace, nproc: int, batch: int, threads: int | None, result: Path
) -> dict[str, Any]:
    me = [str(HERE), "--worker", "--data", args.data, "--epochs", str(args.epochs),
          "--batch-size", str(batch), "--result", str(result)]  # fmt: skip
    if nproc == 1:
        command = [sys.executable, *me]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   f"--nproc-per-node={nproc}", *me]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
    return json.loads(result.read_text())


#: (processes, batch per process, torch threads per process; None: torch's default)
Config = tuple[int, int, int | None]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="amazon", help="amazon, or a synthetic preset (demo...)")
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=2048, help="one process's batch")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--no-write", action="store_true", help="print, leave BENCHMARKS.md alone")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    n, b = args.nproc, args.batch_size
    configs: list[Config] = [(1, b, None), (1, b, 1), (n, b, 1), (n, b // n, 1)]
    times: dict[Config, list[float]] = {c: [] for c in configs}
    last: dict[str, Any] = {}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            for config in configs:
                last = _run(args, *config, Path(tmp) / "result.json")
                times[config].append(float(last["epoch_seconds_mean"]))
                print(f"repeat {rep}: {config}: {times[config][-1]:.2f} s/epoch", flush=True)
    examples, st = int(last["examples"]), last["stats"]
    one = statistics.median(times[configs[0]])
    lines = [
        "| processes | batch per process | torch threads per process | steps per epoch | "
        "s/epoch (median) | runs | speed-up |",
        "|---|---|---|---|---|---|---|",
    ]
    for config in configs:
        nproc, batch, threads = config
        med = statistics.median(times[config])
        steps = math.ceil(math.ceil(examples / nproc) / batch)
        runs = ", ".join(f"{t:.2f}" for t in times[config])
        lines.append(
            f"| {nproc} | {batch:,} | {threads or 'default'} | {steps:,} | {med:.2f} | {runs} | "
            f"{one / med:.2f}x |"
        )
    body = "\n".join(
        [
            f"- Machine: {machine_line()}. Measured while other jobs shared the machine unless "
            "the lead re-ran it on a quiet one.",
            f"- Data: {args.data} ({st['users']:,} users, {st['items']:,} products, "
            f"{st['train_interactions']:,} train interactions), leave-one-out, {examples:,} "
            "training examples per epoch.",
            f"- Model: FusionConfig defaults, id embeddings as product input (no text/KGE), "
            f"{args.epochs} epoch(s) per run, seed 0; gloo. Speed-up against the first row "
            "(one process, torch's default threads: one per core).",
            f"- Command: `.venv/bin/python bench/bench_ddp.py --data {args.data} --nproc {n} "
            f"--epochs {args.epochs} --repeats {args.repeats}` ({time.perf_counter() - start:.0f}"
            " s in all)",
            "",
            *lines,
        ]
    )
    print(body)
    if not args.no_write:
        write_section("ddp", "Data-parallel training (kgrec train --nproc)", body)


if __name__ == "__main__":
    main()
