"""Build a qdrant-edge shard's HNSW index in a child process: `python -m ossa_search.stores.edge_optimize PATH`.

`EdgeShard.optimize()` holds the GIL for as long as it runs (measured: a Python thread ticking every
10 ms got no tick during a 3.8 s optimize of 6,000 x 768 points), so running it in a thread of the
serving process would freeze its event loop for seconds to minutes. Instead `EdgeStore` copies the
flushed shard, this child (niced) optimizes the copy, and the store swaps it in, replaying the
writes it took meanwhile. The child exits 0 when it finished, 1 with the reason on stderr.
"""

from __future__ import annotations

import contextlib
import os
import sys


def optimize(path: str) -> bool:
    from qdrant_edge import EdgeShard

    shard = EdgeShard.load(path)
    try:
        changed = shard.optimize()
        shard.flush()
    finally:
        shard.close()
    return changed


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m ossa_search.stores.edge_optimize SHARD_DIR", file=sys.stderr)
        return 2
    with contextlib.suppress(OSError):
        os.nice(10)  # the serving process keeps priority on a small machine
    try:
        optimize(argv[0])
    except Exception as err:
        print(f"optimize {argv[0]}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
