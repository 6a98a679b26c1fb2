"""Measuring an export's encoder candidates on the CPU at hand: latency and FP-fidelity on the synthetic probe.

``measure`` compiles each candidate as the predictor will run it (same device and config), runs the probe's images
through it and the shared decoder, and times the encoder (rounds interleaved across candidates, so a load spike
hits them all alike). ``SelectionCache`` keeps the result beside the export (``selection_cache.json``; in
``~/.cache/dfq-sam`` when the export folder is read-only), keyed by CPU model, OpenVINO version, device, config and
the candidates' file hashes: a second start on the same box measures nothing. ``at_precisions`` adds pinned
variants of the candidates (``int8@f32``: the INT8 encoder with ``INFERENCE_PRECISION_HINT=f32``, same files; and
``float@input`` / ``float@mixed``: its first layer / its convolutional head at f32, the rest at the default,
``runtime.split``), so a bf16-default CPU can weigh its fast lossy default against f32 too. OpenVINO only, no torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .selection import Measured
from .split import F32, HEAD_PRECISIONS, PRECISION, compile_encoder, precision_of

CACHE = "selection_cache.json"
# input / mixed: the first layer / the convolutional head at f32, the rest at the default (runtime.split)
PRECISIONS = ("default", "f32", "bf16", "f16", *HEAD_PRECISIONS)


def box_chunks(boxes: np.ndarray, per_call: int):
    """(chunk of exactly ``per_call`` boxes, how many are real) over ``boxes``, the last chunk padded: the decoder
    IRs have a static box count."""
    for start in range(0, len(boxes), per_call):
        chunk = boxes[start : start + per_call]
        real = len(chunk)
        if real < per_call:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], per_call - real, axis=0)])
        yield chunk.astype(np.float32), real


def _decode_fn(request):
    """(embedding, boxes) -> logits over a decoder infer request."""
    per_call = int(request.model_inputs[1].get_partial_shape()[0].get_length())

    def decode(embedding: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        return np.concatenate([np.array(request.infer({0: embedding, 1: chunk})[0][:real])
                               for chunk, real in box_chunks(boxes, per_call)])

    return decode


def default_precision(core, device: str = "CPU", config: dict | None = None) -> str | None:
    """The precision OpenVINO runs a float IR at on ``device`` with ``config``: the config's pin, else the device's
    default (bf16 on AMX / AVX-512-BF16 CPUs, f32 on others); None where the device does not say."""
    value = (config or {}).get(PRECISION)
    if value is None:
        try:
            value = core.get_property(device, PRECISION)
        except RuntimeError:
            return None
    return value.get_type_name() if hasattr(value, "get_type_name") else str(value)


def at_precisions(candidates: dict[str, dict[str, Any]], precisions, default: str | None,
                  heads: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """The candidates as the box may run them: for each of ``precisions``, ``"default"`` (OpenVINO's choice, the
    candidate as it is), a pinned inference precision (``"f32"``, ``"bf16"``, ``"f16"``: a variant named
    ``name@f32`` whose ``config`` pins ``INFERENCE_PRECISION_HINT``; it shares the candidate's files) or a head
    precision, ``"input"`` or ``"mixed"`` (``name@input``, ``name@mixed``: the encoder up to the node ``heads[p]``
    names pinned to f32 and the rest at the default; ``runtime.split``). A pin equal to ``default``, and a head
    precision where the default is f32, is the candidate itself (the same compiled model), so it adds nothing."""
    precisions = tuple(dict.fromkeys(precisions))
    if not precisions or any(p not in PRECISIONS for p in precisions):
        raise ValueError(f"precisions must be some of {', '.join(PRECISIONS)}; got {list(precisions)}")
    if missing := [p for p in precisions if p in HEAD_PRECISIONS and p not in (heads or {})]:
        raise ValueError(f"precision {missing[0]!r} needs an encoder whose f32 head is known (runtime.split.HEADS "
                         "lists the model families that have one)")
    out: dict[str, dict[str, Any]] = {}
    for name, c in candidates.items():
        for p in precisions:
            if p in ("default", default) or (p in HEAD_PRECISIONS and default in (None, "f32")):
                out.setdefault(name, c)
            elif p in HEAD_PRECISIONS:
                out[f"{name}@{p}"] = {**c, "head": heads[p]}
            else:
                out[f"{name}@{p}"] = {**c, "config": {PRECISION: p}}
    return out


def run_config(config: dict | None, candidate: dict[str, Any]) -> dict:
    """The compile config of ``candidate``: the box's ``config`` with the candidate's pin (if any) over it."""
    return {**(config or {}), **candidate.get("config", {})}


def compiled_decoder(core, folder: str | Path, device: str, config: dict | None, decoders: dict[str, Any]):
    """The export's decoder compiled with ``config``, from ``decoders`` (config -> compiled model, filled here) when
    it was compiled before: a predictor and its measurement share each decoder compilation."""
    key = json.dumps(config or {}, sort_keys=True, default=str)
    if key not in decoders:
        decoders[key] = core.compile_model(str(Path(folder) / "decoder.xml"), device, config or {})
    return decoders[key]


def measure(core, folder: str | Path, candidates: dict[str, dict[str, Any]], probe: dict[str, np.ndarray],
            device: str = "CPU", config: dict | None = None, rounds: int = 2, decoders: dict[str, Any] | None = None
            ) -> dict[str, dict[str, Any]]:
    """{name: {"ms", "fidelity", "precision", "per_prompt"}} of each candidate on this box (``rounds`` passes over
    the probe's images after one warm-up each; ``ms``: median encoder latency). A pinned candidate
    (``at_precisions``) runs encoder and decoder at its pin; ``decoders`` (``compiled_decoder``'s cache) lends
    decoders compiled before and keeps the ones compiled here."""
    from ..export.probe import probe_fidelity

    folder = Path(folder)
    decoders = {} if decoders is None else decoders

    def decode_at(cfg: dict):
        return _decode_fn(compiled_decoder(core, folder, device, cfg, decoders).create_infer_request())

    decode = {name: decode_at(run_config(config, c)) for name, c in candidates.items()}
    compiled = {name: compile_encoder(core, str(folder / c["xml"]), device, run_config(config, c), c)
                for name, c in candidates.items()}
    requests = {name: m.create_infer_request() for name, m in compiled.items()}
    times: dict[str, list[float]] = {name: [] for name in compiled}
    inputs = [x[None].astype(np.float32) for x in probe["inputs"]]
    for request in requests.values() if rounds else ():  # warm-up before timing (none when nothing is timed)
        request.infer({0: inputs[0]})
    for _ in range(rounds):
        for name, request in requests.items():
            for x in inputs:
                t0 = time.perf_counter()
                request.infer({0: x})
                times[name].append(1e3 * (time.perf_counter() - t0))
    out = {}
    for name, request in requests.items():
        mean, per_prompt = probe_fidelity(probe, lambda x, r=request: r.infer({0: x})[0].copy(), decode[name])
        out[name] = {"ms": float(np.median(times[name])) if times[name] else None, "fidelity": mean, "per_prompt": per_prompt,
                     "precision": precision_of(compiled[name])}
    return out


def measuring_box(core, device: str = "CPU") -> dict[str, str]:
    """The CPU model and OpenVINO version a measurement was made with (what it is valid for)."""
    import openvino as ov

    return {"cpu": str(core.get_property(device, "FULL_DEVICE_NAME")), "openvino": ov.get_version()}


def export_fidelity(folder: str | Path, candidates: dict[str, dict[str, Any]], probe: dict[str, np.ndarray],
                    rounds: int = 0, core=None) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, Any]]]:
    """Each candidate's probe fidelity on the exporting CPU: {name: {precision: fidelity}}, at f32 and, where
    OpenVINO's default differs (bf16 on AMX / AVX-512-BF16 CPUs), at the default too; and the measurement at the
    default config as ``OVSamPredictor`` takes it (``measure`` with ``rounds`` timed passes), for its cache.
    ``core``: the caller's ``ov.Core`` (a new one if None)."""
    if core is None:
        import openvino as ov

        core = ov.Core()
    found: dict[str, dict[str, float]] = {name: {} for name in candidates}
    at_default = measure(core, folder, candidates, probe, rounds=rounds)
    passes = [at_default]
    if any(m["precision"] != "f32" for m in at_default.values()):  # the default is bf16 here: f32 too, first
        passes.insert(0, measure(core, folder, candidates, probe, config=F32, rounds=0))
    for measured in passes:
        for name, m in measured.items():
            found[name].setdefault(m["precision"], round(m["fidelity"], 5))
    return found, at_default


def box_key(core, device: str, config: dict | None, manifest: dict[str, Any],
            candidates: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """What a cached measurement is valid for: this CPU model, OpenVINO version, device, config, candidates (and
    the pinned variants of ``candidates`` measured with them, if any)."""
    files = manifest.get("files", {})
    hashes = {f: files.get(f, {}).get("sha256") for c in manifest.get("candidates", {}).values()
              for f in (c["xml"], c["bin"])}
    key = {**measuring_box(core, device), "device": device,
           "config": {k: str(v) for k, v in sorted((config or {}).items())},
           "files": hashes, "decoder": files.get("decoder.bin", {}).get("sha256")}
    if pinned := sorted(name for name, c in (candidates or {}).items() if c.get("config") or c.get("head")):
        key["pinned"] = pinned
    return key


class SelectionCache:
    """Measurements per box, beside the export (or in the user's cache when the export is read-only)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        digest = hashlib.sha256(str(self.folder.resolve()).encode()).hexdigest()[:16]
        self.paths = [self.folder / CACHE,
                      Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dfq-sam" / f"{digest}.json"]

    def _entries(self, path: Path) -> list[dict]:
        try:
            return json.loads(path.read_text()).get("entries", [])
        except (OSError, ValueError):
            return []

    def get(self, key: dict) -> dict[str, Any] | None:
        for path in self.paths:
            for entry in self._entries(path):
                if entry.get("key") == key:
                    return entry["measured"]
        return None

    def put(self, key: dict, measured: dict[str, Any]) -> Path | None:
        """Store (atomically) in the first writable place; None if none is."""
        for path in self.paths:
            entries = [e for e in self._entries(path) if e.get("key") != key] + [{"key": key, "measured": measured}]
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=".cache-", dir=path.parent)
                with os.fdopen(fd, "w") as handle:
                    json.dump({"entries": entries[-16:]}, handle, indent=1)
                os.replace(tmp, path)
                return path
            except OSError:
                continue
        return None


def as_measured(candidates: dict[str, dict[str, Any]], measured: dict[str, dict[str, Any]]) -> list[Measured]:
    return [Measured(name, m["ms"], m["fidelity"], float(candidates[name].get("mib", 0.0)))
            for name, m in measured.items()]
