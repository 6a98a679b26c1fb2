"""Generate ``docs/RESULTS.md`` and README's result tables from ``benchmarks/results/``.

    python benchmarks/report.py          # rewrite docs/RESULTS.md and the generated blocks of README.md
    python benchmarks/report.py --check  # exit 1 (and say which) when either is out of date

Nothing here holds a number: ``benchmarks/tables.yaml`` says which results file and which key each cell reads,
``benchmarks/machines.yaml`` what each machine id in a file name is. Results files are named
``<date>_<machine>_<what>.json``; a row's machine and source columns come from the file it reads.
A README block is the text between ``<!-- generated:ID -->`` and ``<!-- /generated:ID -->``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})_([a-z0-9-]+)_(.+)$")
MISSING = "—"


def parse_name(name: str) -> tuple[str, str]:
    """(date, machine id) of a results file name; a clear error for a name outside the convention."""
    m = NAME.match(name)
    if not m:
        raise ValueError(f"results file {name!r} is not named <date>_<machine>_<what>.<ext>")
    return m.group(1), m.group(2)


def lookup(data: Any, path: list, where: str) -> Any:
    """Follow ``path`` (keys, list indices, or ``{key: value}`` selectors of a list of dicts) into ``data``."""
    for step in path:
        if isinstance(step, dict):  # the first element of a list of dicts with all these key: value pairs
            found = [e for e in data if isinstance(e, dict) and all(e.get(k) == v for k, v in step.items())]
            if not found:
                raise KeyError(f"{where}: no element with {step}")
            data = found[0]
        elif isinstance(data, list):
            data = data[int(step)]
        else:
            if step not in data:
                raise KeyError(f"{where}: no key {step!r} (have {sorted(data)[:12]})")
            data = data[step]
    return data


class Sources:
    def __init__(self, folder: Path = RESULTS) -> None:
        self.folder = folder
        self._cache: dict[str, Any] = {}

    def __call__(self, name: str) -> Any:
        if name not in self._cache:
            path = self.folder / name
            if not path.exists():
                raise FileNotFoundError(f"tables.yaml reads {name}, which is not in {self.folder}")
            self._cache[name] = json.loads(path.read_text())
        return self._cache[name]


def cell(spec: Any, default_file: str | None, sources: Sources) -> str:
    """One table cell: a literal, ``null`` (not measured), or a value read from a results file and formatted.
    Keys: ``path`` (required), ``file`` (else the row's), ``fmt`` (Python format spec, default ``.3f``),
    ``divide`` (a second path: path / divide), ``suffix``."""
    if spec is None:
        return MISSING
    if not isinstance(spec, dict):
        return str(spec)
    name = spec.get("file", default_file)
    data = sources(name)
    where = f"{name}:{spec['path']}"
    value = lookup(data, spec["path"], where)
    if "divide" in spec:
        value = float(value) / float(lookup(data, spec["divide"], where))
    if isinstance(value, float) or (isinstance(value, int) and "fmt" in spec and not isinstance(value, bool)):
        text = format(value, spec.get("fmt", ".3f"))
    else:  # integers (batch sizes, counts) and text as they are
        text = str(value)
    return text + spec.get("suffix", "")


def table(spec: dict, sources: Sources, link_prefix: str) -> str:
    """A markdown table: the spec's columns + machine + source; one line per row."""
    head = list(spec["columns"]) + ["machine", "source"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in spec["rows"]:
        name = row.get("file")
        cells = [cell(c, name, sources) for c in row["cells"]]
        if len(cells) != len(spec["columns"]):
            raise ValueError(f"table {spec['id']}: a row has {len(cells)} cells for {len(spec['columns'])} columns")
        if name is None:  # a published figure: its citation instead of a file
            cells += ["published", row["cite"]]
        else:
            cells += [f"`{parse_name(name)[1]}`", f"[{name}]({link_prefix}{name})"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machines_table(machines: dict) -> str:
    lines = ["| id | machine | used for |", "|---|---|---|"]
    for key, m in machines.items():
        lines.append(f"| `{key}` | {m['machine']} | {m['used_for']} |")
    return "\n".join(lines)


def results_md(tables: list[dict], machines: dict, sources: Sources) -> str:
    used = {parse_name(r["file"])[1] for t in tables for r in t["rows"] if "file" in r}
    unknown = used - set(machines)
    if unknown:
        raise ValueError(f"machine ids {sorted(unknown)} are not in benchmarks/machines.yaml")
    out = ["# Results", "",
           "<!-- Generated by `python benchmarks/report.py` from benchmarks/results/, benchmarks/tables.yaml and "
           "benchmarks/machines.yaml. Do not edit: edit those and regenerate (a test checks this file is current). -->",
           "",
           "The current numbers, one table per question. Every row names the machine it was measured on and the "
           "results file it reads. How each was measured, and what was tried before, is in the dated "
           "[notebook](notebook/); the scripts that write the files are indexed in "
           "[benchmarks/README.md](../benchmarks/README.md).", "",
           "**FP-fidelity**: the Dice between the quantized model's mask and the FP32 model's mask for the same "
           "box prompt, averaged over prompts (1.0 = identical masks); the FP32 reference is torch or an IR pinned "
           "to `INFERENCE_PRECISION_HINT=f32`. **GT Dice**: the Dice against the ground-truth mask. Sets: 136 "
           "nuclei (DSB-2018 tiles) and 41 MNI152 brain-MRI prompts ([architecture](architecture.md#evaluation)).",
           ""]
    out += ["## Contents", ""] + [f"- [{t['title']}](#{anchor(t['title'])})" for t in tables] + \
           ["- [Machines](#machines)", ""]
    for t in tables:
        out += [f"## {t['title']}", "", f"*{t['question']}*", "", table(t, sources, "../benchmarks/results/"), ""]
        if t.get("notes"):
            out += [t["notes"].strip(), ""]
    out += ["## Machines", "", machines_table(machines), ""]
    return "\n".join(out)


def anchor(title: str) -> str:
    """GitHub's heading anchor."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def readme_blocks(text: str, tables: list[dict], sources: Sources) -> str:
    for t in tables:
        if not t.get("readme"):
            continue
        begin, end = f"<!-- generated:{t['id']} -->", f"<!-- /generated:{t['id']} -->"
        if begin not in text or end not in text:
            raise ValueError(f"README.md has no block {begin} … {end} for table {t['id']!r}")
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        body = table(t, sources, "benchmarks/results/")
        text = f"{head}{begin}\n{body}\n{end}{tail}"
    return text


def generate(root: Path = ROOT) -> dict[Path, str]:
    """{file: its generated text} for docs/RESULTS.md and README.md."""
    tables = yaml.safe_load((root / "benchmarks" / "tables.yaml").read_text())
    machines = yaml.safe_load((root / "benchmarks" / "machines.yaml").read_text())
    sources = Sources(root / "benchmarks" / "results")
    readme = root / "README.md"
    return {root / "docs" / "RESULTS.md": results_md(tables, machines, sources),
            readme: readme_blocks(readme.read_text(), tables, sources)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="only check that the generated files are current")
    args = ap.parse_args(argv)
    stale = []
    for path, text in generate().items():
        if path.read_text() != text:
            stale.append(path)
            if not args.check:
                path.write_text(text)
    if args.check and stale:
        print("out of date (run python benchmarks/report.py): " + ", ".join(str(p.relative_to(ROOT)) for p in stale))
        return 1
    print("up to date" if not stale else "rewrote " + ", ".join(str(p.relative_to(ROOT)) for p in stale))
    return 0


if __name__ == "__main__":
    sys.exit(main())
