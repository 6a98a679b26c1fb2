"""File digests and the checks an edge box runs on an export before trusting it (no torch, no OpenVINO).

``save_export`` records the sha256 of each IR file in ``manifest.json["files"]``; ``verify_export`` recomputes
them, and ``check_data_free`` reads the provenance. Both raise ``ExportIntegrityError`` naming the file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

IR_FILES = ("encoder.xml", "encoder.bin", "decoder.xml", "decoder.bin")


class ExportIntegrityError(ValueError):
    """An export whose files do not match its manifest (damaged, truncated, swapped), or whose provenance
    does not allow it to be used."""


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def digests(folder: str | Path, names: tuple[str, ...] = IR_FILES) -> dict[str, dict[str, Any]]:
    folder = Path(folder)
    return {n: {"sha256": file_sha256(folder / n), "bytes": (folder / n).stat().st_size} for n in names}


def file_problems(folder: str | Path, recorded: dict[str, Any], names) -> list[str]:
    """What is wrong with each of ``names`` in ``folder`` against the ``recorded`` digests (empty: all fine)."""
    folder = Path(folder)
    problems = []
    for name in names:
        path = folder / name
        if name not in recorded:
            problems.append(f"{path}: no hash in the manifest")
        elif not path.exists():
            problems.append(f"{path}: missing")
        elif path.stat().st_size != recorded[name]["bytes"]:
            problems.append(f"{path}: {path.stat().st_size} bytes, the manifest says {recorded[name]['bytes']} "
                            f"(truncated or replaced)")
        elif file_sha256(path) != recorded[name]["sha256"]:
            problems.append(f"{path}: sha256 differs from the manifest (edited, damaged, or from another export)")
    return problems


def recorded_files(folder: str | Path, manifest: dict[str, Any]) -> dict[str, Any]:
    recorded = manifest.get("files")
    if not recorded:
        raise ExportIntegrityError(f"{Path(folder) / 'manifest.json'} records no file hashes (an export made before "
                                   f"dfq-sam recorded them, or an edited manifest): re-export it, or pass "
                                   f"verify=False / --no-verify to use it unchecked")
    return recorded


def verify_export(folder: str | Path, manifest: dict[str, Any] | None = None, names=None) -> dict[str, str]:
    """Check ``names`` (default: the four IR files and every other file the manifest records: encoder candidates,
    the synthetic probe) against ``manifest["files"]``; returns {file: "ok"} or raises naming each bad file."""
    folder = Path(folder)
    manifest = manifest if manifest is not None else json.loads((folder / "manifest.json").read_text())
    recorded = recorded_files(folder, manifest)
    names = list(dict.fromkeys([*IR_FILES, *recorded])) if names is None else list(names)
    problems = file_problems(folder, recorded, names)
    if problems:
        raise ExportIntegrityError("export failed its integrity check:\n  " + "\n  ".join(problems))
    return {name: "ok" for name in names}


def check_data_free(folder: str | Path, manifest: dict[str, Any]) -> None:
    """Refuse an export whose provenance says real data was used, or that records no provenance."""
    calibration = manifest.get("calibration") or {}
    used = calibration.get("real_data_used")
    distilled = (calibration.get("distillation") or {}).get("real_data_used", False)
    if used is None:
        raise ExportIntegrityError(f"{folder}: the manifest records no calibration provenance "
                                   f"(real_data_used missing): refused by require_data_free")
    if used is not False or distilled is not False:
        raise ExportIntegrityError(f"{folder}: its provenance says real data was used (calibration method "
                                   f"{calibration.get('method')!r}): refused by require_data_free")
