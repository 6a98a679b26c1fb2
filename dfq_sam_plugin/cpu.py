"""Which class of x86 CPU this is, for choosing the OpenVINO recipe that pays on it.

OpenVINO's ``OPTIMIZATION_CAPABILITIES`` says whether the CPU plugin runs float IRs in bf16 (``BF16``) but lists
``INT8`` on every x86 CPU, also where INT8 has no fast dot-product instruction; the ISA flags (``/proc/cpuinfo``
on Linux) say which int8 dot products exist: AMX tiles, AVX-512 VNNI, AVX-VNNI, or none (AVX2 only, where an INT8
IR runs slower than the float one: docs/notebook/2026-12-01.md §11).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

# (class, ISA flags it needs, the packaged recipe for it, the encoder candidate RESULTS measured fastest within
# fidelity tolerance there); the first match wins. Every CPU recipe's export also carries the float encoder
# (recipe key ``candidates``) and the predictor measures on the box, so no class is left with a model slower than
# its float IR: AMX Xeons run INT8 at 0.83-0.98x the bf16 float IR (docs/notebook/2026-12-02.md §14, 16, 17), AVX-512 VNNI EPYCs at
# 1.25x (docs/notebook/2026-12-02.md §15; 1.15x on a Zen 4 EPYC since the recipe keeps fc2 float, 2026-12-08.md §47), AVX2 EPYCs INT8 weights at 0.74-1.04x FP32 (docs/notebook/2026-12-01.md §11, 12;
# 0.93x on 2026-12-07, where the box picked float: docs/notebook/2026-12-07.md §38); AVX-VNNI is not measured.
_CLASSES = (
    ("amx", ("amx_int8",), "openvino_int8_cpu_vnni", "float"),
    ("avx512_vnni", ("avx512_vnni",), "openvino_int8_cpu_vnni", "int8"),
    ("avx_vnni", ("avx_vnni",), "openvino_int8_cpu_vnni", None),
    ("avx2", ("avx2",), "openvino_int8_cpu_avx2", "float"),
)
RECIPE_FALLBACK = "openvino_int8_cpu"  # any x86 CPU: OverflowFix on


@dataclass(frozen=True)
class CpuClass:
    name: str  # amx | avx512_vnni | avx_vnni | avx2 | unknown
    int8_dot: bool  # a fast int8 dot-product instruction (VNNI / AMX)
    bf16_default: bool  # OpenVINO runs float IRs in bf16 unless INFERENCE_PRECISION_HINT=f32
    capabilities: tuple[str, ...]  # OpenVINO CPU OPTIMIZATION_CAPABILITIES
    flags: tuple[str, ...]  # the ISA flags that decided the class
    recipe: str  # the packaged OpenVINO recipe for this class
    expected: str | None = None  # the candidate RESULTS measured fastest-faithful on this class (None: not measured)

    def describe(self) -> str:
        dot = "int8 dot products" if self.int8_dot else "no int8 dot-product instruction"
        fp = "float IRs run in bf16 by default" if self.bf16_default else "float IRs run in f32"
        return f"{dot}, {fp}; flags {', '.join(self.flags) or 'none'}"

    def to_dict(self) -> dict:
        return asdict(self)


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def classify(capabilities: tuple[str, ...] | list[str], flags: set[str] | frozenset[str]) -> CpuClass:
    """The class of a CPU from OpenVINO's capabilities and its ISA flags (pure: testable for every class)."""
    capabilities = tuple(capabilities)
    for name, needed, recipe, expected in _CLASSES:
        if all(f in flags for f in needed):
            int8_dot = name != "avx2"
            return CpuClass(name, int8_dot, "BF16" in capabilities, capabilities, tuple(sorted(
                f for f in flags if f in {"amx_int8", "amx_bf16", "avx512_vnni", "avx512_bf16", "avx_vnni", "avx2"})),
                recipe, expected)
    return CpuClass("unknown", False, "BF16" in capabilities, capabilities, (), RECIPE_FALLBACK)


def cpu_class(core=None) -> CpuClass:
    """This machine's CPU class (OpenVINO's CPU plugin and /proc/cpuinfo)."""
    if core is None:
        import openvino as ov

        core = ov.Core()
    return classify(tuple(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")), _cpu_flags())
