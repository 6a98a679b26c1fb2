"""docs/RESULTS.md and README's tables are generated from benchmarks/results/ and stay current; results files
follow <date>_<machine>_<what> with a known machine; README quotes no number that the generated tables lack;
the code cites the design that lives in the repository (docs/architecture.md)."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _report():
    spec = importlib.util.spec_from_file_location("report", ROOT / "benchmarks" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_results_md_and_readme_regenerate_byte_identically():
    for path, text in _report().generate(ROOT).items():
        assert path.read_text() == text, f"{path.name} is out of date: run python benchmarks/report.py"


def test_check_mode_fails_on_a_stale_file(tmp_path):
    """--check is what a maintainer runs; it must fail (exit 1) when a generated file was edited by hand."""
    for rel in ("benchmarks/report.py", "benchmarks/tables.yaml", "benchmarks/machines.yaml", "README.md"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text((ROOT / rel).read_text())
    (tmp_path / "benchmarks" / "results").symlink_to(ROOT / "benchmarks" / "results")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "RESULTS.md").write_text((ROOT / "docs" / "RESULTS.md").read_text().replace("0.9", "0.8", 1))
    script = tmp_path / "benchmarks" / "report.py"
    done = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert done.returncode == 1 and "docs/RESULTS.md" in done.stdout, done.stdout + done.stderr
    assert subprocess.run([sys.executable, str(script)], capture_output=True).returncode == 0  # regenerates
    assert subprocess.run([sys.executable, str(script), "--check"], capture_output=True).returncode == 0


def test_results_files_are_named_by_date_and_known_machine():
    machines = yaml.safe_load((ROOT / "benchmarks" / "machines.yaml").read_text())
    report = _report()
    files = [p for p in (ROOT / "benchmarks" / "results").iterdir()]
    assert files and all(p.is_file() for p in files), "results/ is flat"
    for p in files:
        _date, machine = report.parse_name(p.name)
        assert machine in machines, f"{p.name}: machine {machine!r} is not in benchmarks/machines.yaml"
        assert "INVALID" not in p.name


def test_readme_numbers_come_from_generated_tables():
    readme = (ROOT / "README.md").read_text()
    results = (ROOT / "docs" / "RESULTS.md").read_text()
    prose = re.sub(r"<!-- generated:(\w+) -->.*?<!-- /generated:\1 -->", "", readme, flags=re.S)
    numbers = set(re.findall(r"(?<![\w.])\d+\.\d+(?![\w.])", prose))
    assert numbers, "the check would pass vacuously"
    missing = sorted(n for n in numbers if n not in results)
    assert not missing, f"README quotes {missing}, which no generated table holds"


def test_code_cites_the_design_in_the_repository():
    tracked = subprocess.run(["git", "ls-files", "dfq_sam_plugin", "tests", "integration_tests", "benchmarks",
                              "examples", "tools"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    offenders = [f for f in tracked if f.endswith((".py", ".yaml", ".sh")) and f != "tests/test_results_doc.py"
                 and "DESIGN §" in (ROOT / f).read_text()]
    assert not offenders, offenders
    anchor = _report().anchor  # GitHub's heading anchors, as RESULTS' contents links use them
    anchors = {anchor(line[3:]) for line in (ROOT / "docs" / "architecture.md").read_text().splitlines()
               if line.startswith("## ")}
    for f in tracked:
        if f.endswith((".py", ".yaml")):
            for ref in re.findall(r"architecture\.md#([\w-]+)", (ROOT / f).read_text()):
                assert ref in anchors, f"{f} points to architecture.md#{ref}, which does not exist"
