"""Keep the benches from rotting: run them with tiny sizes, through the real kernel where they need it.

No timing is asserted (performance is judged from the bench's own output, never in tests). What
is asserted: each bench prints its ratio lines; the gather benches found and read every set they
made (their distinctive somaxconn and hostname), report the facts sizes and leave no process in
their namespaces; the fleet bench reports every host; the ansible-lint bench ran both sides.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench" / "bench_gather.py"
CONFIGS = ("probe=False,runtime_cli=False", "probe=False,runtime_cli=True",
           "probe=True,runtime_cli=False", "probe=True,runtime_cli=True")


@pytest.mark.skipif(os.geteuid() != 0, reason="the bench makes namespaces: needs root")
def test_bench_gather_runs_and_finds_its_sets(tmp_path):
    summary_file = tmp_path / "summary.json"
    proc = subprocess.run([sys.executable, str(BENCH), "--sizes", "2,3", "--repeat", "1",
                           "--summary", str(summary_file)],
                          capture_output=True, text=True, timeout=300, cwd=REPO, check=False)
    out = proc.stdout
    # 0 = targets met, 1 = missed: both are a working bench; 2 = sets not found, else a crash.
    assert proc.returncode in (0, 1), out + proc.stderr

    # (a) the host gather against sysctl -a, probe off and on
    assert "baseline: sysctl -a" in out
    assert len(re.findall(r"gather\(containers=False, probe=(True|False)\).*ratio to sysctl -a: [0-9.]+x", out)) == 2
    # (b) the nsenter loop and four gather configurations, per size; (d) once more, pod-shaped
    assert len(re.findall(r"baseline: nsenter loop", out)) == 3
    ratio_lines = re.findall(r"gather\(probe=\w+, runtime_cli=\w+\).*speed-up over the loop: [0-9.]+x "
                             r"\(cpu [0-9.]+x\); found (\d+)/(\d+) sets, verified (\d+)/(\d+)", out)
    assert len(ratio_lines) == 8, out
    for found, made, verified, made_again in ratio_lines:
        assert found == made == verified == made_again, out
    assert ratio_lines[-1][0] == "3"
    assert re.search(r"RESULT module defaults, host \+ 3 sets: targets (met|MISSED)", out)
    # (c) facts sizes
    assert re.search(r"view=diff\s+total [0-9.]+ KiB\s+of which our 3 sets", out)
    assert re.search(r"view=full\s+total [0-9.]+ KiB\s+of which our 3 sets", out)

    summary = json.loads(summary_file.read_text())
    assert summary["left_behind"] == 0
    assert summary["rc"] == proc.returncode
    assert set(summary["sets"]) == {"2", "3"}
    for size, entry in summary["sets"].items():
        assert set(entry["gather"]) == set(CONFIGS)
        for figures in entry["gather"].values():
            assert figures["found"] == figures["verified"] == int(size)
    assert set(summary["targets"]) == set(CONFIGS)
    # the full view carries every key of each set, the diff view only what differs
    assert summary["bytes"]["full"]["per_set"] > summary["bytes"]["diff"]["per_set"] > 0
    # (d) 3 containers in 1 pod: all found and read, the pod's somaxconn in each
    assert re.search(r"gather \(defaults\).*speed-up over the loop: [0-9.]+x .*found 3/3 containers, verified 3/3", out)
    assert summary["pods"]["pods"] == 1 and summary["pods"]["gather"]["verified"] == 3


@pytest.mark.skipif(os.geteuid() != 0, reason="the bench makes namespaces: needs root")
def test_bench_gather_process_runs_and_finds_its_sets(tmp_path):
    """bench_gather_process.py (issue 15): the module as a process and through AnsiballZ."""
    summary_file = tmp_path / "summary.json"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "bench_gather_process.py"), "--sizes", "2",
                           "--repeat", "1", "--summary", str(summary_file)],
                          capture_output=True, text=True, timeout=300, cwd=REPO, check=False)
    out = proc.stdout
    assert proc.returncode in (0, 1), out + proc.stderr
    assert len(re.findall(r"module process, containers off, probe (on|off) .*x sysctl -a; [-+][0-9.]+ s "
                          r"\(cpu [-+][0-9.]+ s\) over the floor", out)) == 2
    assert re.search(r"floor: python -c 'import ansible.module_utils.basic' +[0-9.]+ s", out), out
    assert re.search(r"N=2 module process \(defaults\).*faster than the loop; verified 2/2 sets", out), out
    assert re.search(r"sysctl_facts, host \+ 2 sets \(defaults\).*over ping; verified 2/2", out), out
    summary = json.loads(summary_file.read_text())
    assert summary["left_behind"] == 0 and summary["sets"]["2"]["verified"] == 2
    assert 0 < summary["host"]["import_basic"] and "probe_True_over_floor" in summary["host"]
    assert summary["ansiballz"]["ping"] > 0 and summary["ansiballz"]["n"] == 2


def test_bench_fleet_controller_runs_and_reports_every_host(tmp_path):
    """bench_fleet_controller.py (issue 15) at 4 hosts: part 1's four cache states, part 2's
    report run from a jsonfile fact cache with every host ok (checked by the bench itself)."""
    summary_file = tmp_path / "summary.json"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "bench_fleet_controller.py"), "--hosts", "4",
                           "--sets", "3", "--forks", "2", "--repeat", "2", "--summary", str(summary_file)],
                          capture_output=True, text=True, timeout=600, cwd=REPO, check=False)
    out = proc.stdout
    assert proc.returncode in (0, 1), out[-4000:] + proc.stderr[-2000:]
    for label in ("cache off", "cache cold", "cache warm", "rules.preload() before the fork"):
        assert re.search(re.escape(label) + r".* ms \(.*\)\s+[0-9.]+x the baseline", out), label
    assert "reports/fleet.json: 4 hosts" in out and "0 hosts missing or not ok" in out
    summary = json.loads(summary_file.read_text())
    assert summary["fleet"]["hosts"] == 4 and summary["fleet"]["report"]["rc"] == 0
    assert summary["lint"]["cache off (every fork parses)"] > 0


def test_bench_fleet_controller_distinct_kernels(tmp_path):
    """``--distinct-kernels``: every cached host has its own kernel release (no shared
    classification), and the report still holds every host ok."""
    keep = tmp_path / "work"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "bench_fleet_controller.py"), "--hosts", "3",
                           "--sets", "2", "--forks", "2", "--repeat", "1", "--distinct-kernels", "--keep", str(keep)],
                          capture_output=True, text=True, timeout=600, cwd=REPO, check=False)
    out = proc.stdout
    assert proc.returncode in (0, 1), out[-4000:] + proc.stderr[-2000:]
    assert "every host its own kernel release" in out and "0 hosts missing or not ok" in out
    model = json.loads((keep / "reports" / "fleet.json").read_text())
    releases = {row["name"]: row["kernel"] for row in model["hosts"]}
    assert len(set(releases.values())) == 3 and all(rel.endswith("-" + host) for host, rel in releases.items())


def test_bench_ansible_lint_runs_both_sides(tmp_path):
    """bench_ansible_lint.py (issues 6 and 15) on 5 playbooks: both sides of the Runner and of
    the CLI ran, the nsguard rules found the tree's container task, the verdict line is there."""
    keep = tmp_path / "tree"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "bench_ansible_lint.py"), "--playbooks", "5",
                           "--repeat", "1", "--keep", str(keep)],
                          capture_output=True, text=True, timeout=600, cwd=REPO, check=False)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr[-2000:]
    assert re.search(r"^tree: 5 playbooks, \d+ tasks \(1 container tasks\)", out, re.M), out
    assert re.search(r"^bytecode cache: (on|OFF \(PYTHONDONTWRITEBYTECODE)", out, re.M), out
    assert re.search(r"^rules only \(Runner, syntax check skipped\): default [0-9.]+ s wall / [0-9.]+ s CPU, "
                     r"with nsguard [0-9.]+ s / [0-9.]+ s -> ratio wall [0-9.]+, CPU [0-9.]+$", out, re.M), out
    assert re.search(r"^CPU time inside the nsguard rules: [0-9.]+ s = [-+][0-9.]+% .*; [1-9]\d* findings$", out, re.M), out
    # the default rules exit 0 on the generated tree; the nsguard rules' findings make the CLI exit 2
    assert re.search(r"^ansible-lint CLI: .* [1-9]\d* nsguard findings, exit codes 0/2$", out, re.M), out
    assert re.search(r"^(PASS|OVER TARGET)$", out, re.M), out
    assert len(list((keep / "playbooks").glob("*.yml"))) == 5
