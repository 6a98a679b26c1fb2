"""Finished images of an unfinished synthesis run: one ``.npz`` per finished batch under ``OUT/.shards``,
written atomically (temp file + rename), so a killed run loses at most the batch in flight and a restart
with the same folder continues without losing or duplicating any image."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

SHARD_DIR = ".shards"


class ShardStore:
    def __init__(self, folder: str | Path) -> None:
        self.dir = Path(folder) / SHARD_DIR

    def start(self, run_key: dict) -> None:
        """Create the shard folder, or check that the shards there come from the same model and config."""
        self.dir.mkdir(parents=True, exist_ok=True)
        for stale in self.dir.glob("*.tmp"):  # a shard or run key a killed run was writing
            stale.unlink(missing_ok=True)
        key_file = self.dir / "run.json"
        if key_file.exists():
            previous = json.loads(key_file.read_text())
            if {**previous, "num_images": run_key.get("num_images")} == run_key and \
                    previous.get("num_images", 0) <= run_key.get("num_images", 0):
                # an image depends only on the seed and its index: a run extended to more images keeps its shards
                _atomic_write(key_file, json.dumps(run_key, indent=1, sort_keys=True).encode())
            elif previous != run_key:
                diff = sorted(k for k in set(previous) | set(run_key) if previous.get(k) != run_key.get(k))
                raise ValueError(
                    f"{self.dir.parent} holds an unfinished run with other settings ({', '.join(diff)}); "
                    f"use another --out folder or delete {self.dir}"
                )
        else:
            _atomic_write(key_file, json.dumps(run_key, indent=1, sort_keys=True).encode())

    def files(self) -> list[Path]:
        return sorted(self.dir.glob("shard-*.npz")) if self.dir.exists() else []

    def done(self) -> set[int]:
        out: set[int] = set()
        for f in self.files():
            with np.load(f) as z:
                out.update(int(i) for i in z["indices"])
        return out

    def write(self, name: str, arrays: dict[str, np.ndarray]) -> Path:
        path = self.dir / f"shard-{name}.npz"
        tmp = path.with_name(path.name + ".tmp")  # not matched by files()' shard-*.npz
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return path

    def copy_split(self, folder: str | Path, max_bytes: int) -> list[Path]:
        """Copy the run key and every shard to ``folder/.shards``, a shard larger than ``max_bytes`` as pieces of
        disjoint image indices (for transports that cap a file's size); it reads back as the same images."""
        dst = ShardStore(folder)
        dst.dir.mkdir(parents=True, exist_ok=True)
        if (self.dir / "run.json").exists():
            _atomic_write(dst.dir / "run.json", (self.dir / "run.json").read_bytes())
        written = []
        for f in self.files():
            with np.load(f) as z:
                arrays = {k: z[k] for k in z.files}
            n = len(arrays["indices"])
            pieces = min(n, max(1, -(-f.stat().st_size // max_bytes)))
            for i, part in enumerate(np.array_split(np.arange(n), pieces)):
                name = f.stem[len("shard-"):] + (f"-p{i}" if pieces > 1 else "")
                written.append(dst.write(name, {k: v[part] for k, v in arrays.items()}))
        return written

    def read(self) -> dict[str, np.ndarray]:
        """All finished images, sorted by index; an index present twice (cannot happen unless shards were
        copied by hand) is kept once."""
        parts: dict[str, list[np.ndarray]] = {}
        for f in self.files():
            with np.load(f) as z:
                for k in z.files:
                    parts.setdefault(k, []).append(z[k])
        if not parts:
            return {}
        merged = {k: np.concatenate(v) for k, v in parts.items()}
        _, first = np.unique(merged["indices"], return_index=True)
        return {k: v[first] for k, v in merged.items()}


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
