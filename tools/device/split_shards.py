"""Copy a synthesis run's shards to another folder, splitting any shard larger than ``--max-mb`` into pieces
of disjoint image indices (`ShardStore.copy_split`): the device tool brings back files of at most 16 MB, and a
split shard reads back as the same images.

    python tools/device/split_shards.py calib/s1_48 $OUT/s1_48 --max-mb 15     # run folders (each holds .shards)
"""

from __future__ import annotations

import argparse

from dfq_sam_plugin.data.shards import ShardStore


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", help="run folder holding .shards")
    ap.add_argument("dst", help="run folder to write .shards into")
    ap.add_argument("--max-mb", type=float, default=15.0)
    args = ap.parse_args()
    for path in ShardStore(args.src).copy_split(args.dst, int(args.max_mb * 2**20)):
        print(f"{path.name}: {path.stat().st_size / 2**20:.1f} MB")


if __name__ == "__main__":
    main()
