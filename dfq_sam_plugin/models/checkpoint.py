"""Safe checkpoint reading: ``torch.load(weights_only=True)`` and one clear error per failure mode."""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..integrity import file_sha256  # noqa: F401  (re-exported: models use it from here)


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, corrupt, unsafe, or made for another architecture."""


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict (optionally nested under "model" / "state_dict") without executing pickled code."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint is not a file: {path}")
    _check_header(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # weights_only refuses pickles that need arbitrary classes/functions
        raise CheckpointError(
            f"{path} needs code to unpickle (it stores objects, not only tensors); refusing to load it with "
            f"weights_only=True. Re-save it as a plain state dict: torch.save(model.state_dict(), path). "
            f"Detail: {str(exc).splitlines()[0]}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, IndexError, KeyError, ValueError) as exc:
        raise CheckpointError(
            f"{path} is not a readable torch checkpoint (corrupt or truncated?): {str(exc).splitlines()[0]}"
        ) from None
    for key in ("model", "state_dict"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors (found {type(obj).__name__})")
    return dict(obj)


def _check_header(path: Path) -> None:
    """What the file is, when it is plainly not a torch checkpoint: empty, text, or another format."""
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes): an interrupted download or copy?")
    with path.open("rb") as handle:
        head = handle.read(512)
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":  # torch zip format / legacy pickle
        return
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and all(c.isprintable() or c.isspace() for c in text):
        first = text.strip().splitlines()[0][:60] if text.strip() else ""
        raise CheckpointError(f"{path} is a text file ({size} bytes, starts {first!r}), not a torch checkpoint: "
                              f"a Git LFS pointer or an error page saved in its place?")
    raise CheckpointError(f"{path} is not a torch checkpoint (neither torch's zip format nor a pickle; "
                          f"first bytes {head[:8]!r})")


def _summarise(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return f"{len(keys)} ({shown}{', ...' if len(keys) > limit else ''})"


def load_into(model: nn.Module, state: Mapping[str, torch.Tensor], arch: str, path: str | Path) -> None:
    """Strictly load ``state`` into ``model``; mismatches become one CheckpointError naming the problem."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if tuple(state[k].shape) != tuple(own[k].shape)
    )
    if missing or unexpected or shapes:
        parts = [f"{path} is not a {arch} checkpoint:"]
        if missing:
            parts.append(f"missing keys {_summarise(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_summarise(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches {_summarise(shapes, 3)}")
        raise CheckpointError("; ".join(parts))
    model.load_state_dict(state, strict=True)
