"""Long fuzzing runs: python -m tests.modelfuzz --seed 0 --count 20000 [--jobs 2] [--json out.json]

Runs the cases of seeds [seed, seed + count) (route by seed, host plus one emulated target each,
round robin), prints the totals by op, route and target, every failure with its recipe, and with
--shrink writes each failure's minimal model into tests/modelfuzz/regressions/.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from .campaign import Totals, run_chunk


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.modelfuzz", description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--count", type=int, default=200)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--chunk", type=int, default=40, help="cases per batch (one program per target)")
    p.add_argument("--targets", default="all", help="'all' or a comma-separated list (host is always run)")
    p.add_argument("--json", help="write the totals and failures here")
    p.add_argument("--shrink", action="store_true", help="shrink each failure and write a regression model")
    args = p.parse_args(argv)
    totals = Totals()
    start = time.time()
    chunks = [(s, min(args.chunk, args.seed + args.count - s), args.targets)
              for s in range(args.seed, args.seed + args.count, args.chunk)]
    with ProcessPoolExecutor(args.jobs) as pool:
        for done, part in enumerate(pool.map(run_chunk, chunks), 1):
            totals.merge(part)
            print(f"[{time.time() - start:7.0f} s] {totals.cases:6d} cases, {len(totals.failures)} failing", flush=True)
            if args.json:  # after every chunk: a long run stopped early keeps its figures
                Path(args.json).write_text(json.dumps(dict(totals.as_dict(), seconds=round(time.time() - start)),
                                                      indent=1))
    print(totals.summary())
    if args.shrink and totals.failures:
        from .shrink import shrink_and_save

        for f in totals.failures:
            print("shrunk:", shrink_and_save(f))
    return 1 if totals.failures else 0


if __name__ == "__main__":
    sys.exit(main())
