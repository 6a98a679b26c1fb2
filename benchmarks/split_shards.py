"""Copy a synthesis run's shards (``OUT/.shards/shard-*.npz``) to another folder, splitting any shard larger
than ``--max-mb`` into pieces of disjoint image indices: the device tool brings back files of at most 16 MB,
and `ShardStore.read` merges shards by image index, so a split shard reads back as the same images.

    python benchmarks/split_shards.py calib/s1_48/.shards $OUT/s1_48/.shards --max-mb 15
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--max-mb", type=float, default=15.0)
    args = ap.parse_args()
    dst = Path(args.dst)
    dst.mkdir(parents=True, exist_ok=True)
    for f in sorted(Path(args.src).glob("shard-*.npz")):
        with np.load(f) as z:
            arrays = {k: z[k] for k in z.files}
        pieces = min(len(arrays["indices"]), max(1, math.ceil(f.stat().st_size / (args.max_mb * 2**20))))
        for i, part in enumerate(np.array_split(np.arange(len(arrays["indices"])), pieces)):
            name = f.stem if pieces == 1 else f"{f.stem}-p{i}"
            with open(dst / f"{name}.npz", "wb") as fh:
                np.savez_compressed(fh, **{k: v[part] for k, v in arrays.items()})
        print(f"{f.name}: {len(arrays['indices'])} images, {f.stat().st_size / 2**20:.1f} MB, {pieces} piece(s)")


if __name__ == "__main__":
    main()
