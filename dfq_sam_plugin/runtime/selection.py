"""Which encoder candidate of an export to run on this CPU: a pure function of measured times and fidelities.

An export carries several encoders that share one decoder (the float encoder, INT8 weights with float activations,
full INT8; ``export.candidates``). Which one pays depends on the CPU: on AMX Xeons the float IR runs in bf16 and
INT8 is slower (docs/notebook/2026-12-02.md §14, §16, §17), on AVX-512 VNNI CPUs INT8 is 1.25x the bf16 float IR (§15), on
AVX2-only CPUs INT8 activations are slower than float (§11). ``OVSamPredictor`` measures each candidate on the box
(encoder latency, and FP-fidelity on the synthetic probe the export carries) and asks ``choose`` which to use.

Policies:

- ``fastest_faithful`` (default): among the candidates whose fidelity is within ``tolerance`` of the best one,
  the fastest; a candidate less than ``noise`` (relative) faster than a more faithful one does not displace it,
  so timing noise never trades fidelity for nothing;
- ``fastest``, ``smallest`` (bytes on disk), ``most_faithful``;
- a candidate's name: that one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

POLICIES = ("fastest_faithful", "fastest", "smallest", "most_faithful")
DEFAULT_TOLERANCE = 0.03
DEFAULT_NOISE = 0.05


@dataclass(frozen=True)
class Measured:
    """One candidate as measured on this box: encoder median ``ms``, synthetic FP-fidelity, size in ``mib``."""

    name: str
    ms: float
    fidelity: float
    mib: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Choice:
    name: str
    policy: str
    reason: str
    measured: tuple[Measured, ...]

    def to_dict(self) -> dict:
        return {"name": self.name, "policy": self.policy, "reason": self.reason,
                "measured": [m.to_dict() for m in self.measured]}


def _line(m: Measured) -> str:
    return f"{m.name} {m.ms:.1f} ms, fidelity {m.fidelity:.3f}, {m.mib:.1f} MiB"


def choose(measured: Iterable[Measured], policy: str = "fastest_faithful", tolerance: float = DEFAULT_TOLERANCE,
           noise: float = DEFAULT_NOISE) -> Choice:
    """The candidate ``policy`` picks from ``measured`` and a sentence saying why."""
    measured = tuple(measured)
    if not measured:
        raise ValueError("no candidate to choose from")
    names = [m.name for m in measured]
    if len(set(names)) != len(names):
        raise ValueError(f"candidate names repeat: {names}")
    if not 0 <= tolerance < 1 or not 0 <= noise < 1:
        raise ValueError(f"tolerance and noise must be in [0, 1); got {tolerance}, {noise}")
    others = "; ".join(_line(m) for m in measured)
    if policy in names:
        return Choice(policy, policy, f"named by the user ({others})", measured)
    if policy == "fastest":
        pick = min(measured, key=lambda m: (m.ms, -m.fidelity))
        why = "the fastest"
    elif policy == "smallest":
        pick = min(measured, key=lambda m: (m.mib, m.ms))
        why = "the smallest"
    elif policy == "most_faithful":
        pick = max(measured, key=lambda m: (m.fidelity, -m.ms))
        why = "the most faithful"
    elif policy == "fastest_faithful":
        best = max(m.fidelity for m in measured)
        faithful = sorted((m for m in measured if m.fidelity >= best - tolerance), key=lambda m: -m.fidelity)
        pick = faithful[0]  # the most faithful, displaced only by one clearly faster
        for m in faithful[1:]:
            if m.ms < pick.ms * (1 - noise):
                pick = m
        dropped = [m.name for m in measured if m.fidelity < best - tolerance]
        why = (f"the fastest whose fidelity is within {tolerance:g} of the best ({best:.3f})"
               + (f"; {', '.join(dropped)} below that" if dropped else ""))
    else:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)} or a candidate name ({', '.join(names)}); "
                         f"got {policy!r}")
    return Choice(pick.name, policy, f"{why} ({others})", measured)
