"""Exact top-k cosine search (`xtjax.retrieval.search.knn`) and BUCC margin mining at scale, on
the local devices, with random vectors (BUCC 2018 has about 400k sentences per side).

    python benchmarks/search.py --n 400000 --m 400000 --dim 1024          # one accelerator
    python benchmarks/search.py --n 20000 --m 20000 --dim 256             # a CPU

Prints seconds for one knn direction (after a warm-up that compiles) and for margin mining in
both directions, and the similarities per second, as JSON.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np

from xtjax.retrieval.mining import margin_scores
from xtjax.retrieval.search import knn


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--n", type=int, default=20000, help="queries (source sentences)")
  p.add_argument("--m", type=int, default=20000, help="keys (target sentences)")
  p.add_argument("--dim", type=int, default=256)
  p.add_argument("--k", type=int, default=4)
  p.add_argument("--block-size", type=int, default=4096)
  args = p.parse_args()
  rng = np.random.default_rng(0)
  x = rng.standard_normal((args.n, args.dim), np.float32)
  y = rng.standard_normal((args.m, args.dim), np.float32)
  mesh = jax.make_mesh((jax.device_count(),), ("data",))
  knn(x[:args.block_size], y[:args.block_size], args.k, mesh=mesh, block_size=args.block_size)
  t = time.perf_counter()
  knn(x, y, args.k, mesh=mesh, block_size=args.block_size)
  one = time.perf_counter() - t
  t = time.perf_counter()
  margin_scores(x, y, args.k, mesh=mesh, block_size=args.block_size)
  both = time.perf_counter() - t
  print(json.dumps({"devices": f"{jax.device_count()} x {jax.devices()[0].device_kind}",
                    "n": args.n, "m": args.m, "dim": args.dim, "knn_seconds": round(one, 3),
                    "margin_both_directions_seconds": round(both, 3),
                    "similarities_per_second": f"{args.n * args.m / one:.3g}"}))


if __name__ == "__main__":
  main()
