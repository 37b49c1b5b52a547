"""``ansible-test sanity`` and ``ansible-test units`` pass on the collection, offline.

Runs ``scripts/ansible-test.sh`` as CI does (through ``make test``). The first run on a machine
builds ansible-test's per-test virtual environments from PyPI (minutes); later runs reuse them.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "ansible-test.sh"
REGISTRY_DOWN = re.compile(r".*(?:Temporary failure in name resolution|Failed to resolve|"
                           r"No matching distribution found for \S+).*")


def default_sanity_tests() -> list[str]:
    """What ``ansible-test sanity`` runs by default for this collection, minus the script's skips."""
    ansible_test = Path(sys.executable).parent / "ansible-test"
    proc = subprocess.run([str(ansible_test), "sanity", "--list-tests"], capture_output=True, check=False,
                          text=True, timeout=120,
                          cwd=REPO / "tests" / "output" / "ansible-test" / "ansible_collections" / "nsguard" / "sysctl")
    assert proc.returncode == 0, proc.stderr
    listed = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
    skipped = set(re.findall(r"--skip-test\s+([\w-]+)", SCRIPT.read_text()))
    return [name for name in listed if name not in skipped]


@pytest.mark.slow
def test_ansible_test_sanity_and_units_pass():
    env = dict(os.environ, PYTHON=sys.executable, ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(["bash", str(SCRIPT)], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=3600, check=False)
    output = proc.stdout + proc.stderr
    if proc.returncode != 0 and REGISTRY_DOWN.search(output):
        # ansible-test builds one venv per sanity test from PyPI with its own pins; without the
        # registry that cannot happen, which is the environment, not the collection.
        pytest.skip("ansible-test could not build its sanity venvs: the package index is unreachable\n"
                    + "\n".join(REGISTRY_DOWN.findall(output)[:3]))
    assert proc.returncode == 0, f"scripts/ansible-test.sh failed rc={proc.returncode}\n{output[-12000:]}"

    ran = set(re.findall(r'Running sanity test "([\w-]+)"', output))
    assert "validate-modules" in ran, output[-4000:]
    expected = default_sanity_tests()
    assert set(expected) <= ran, f"not run: {sorted(set(expected) - ran)}"
    assert "ERROR: " not in proc.stdout, output[-4000:]

    # units: the module-context run (target-side code, plugins/modules) and the controller run
    summaries = re.findall(r"=+ (.*?) in [\d.]+s(?: \([\d:]+\))? =+", output)
    passed = [int(n) for s in summaries for n in re.findall(r"(\d+) passed", s)]
    assert summaries and all("failed" not in s and "error" not in s for s in summaries), summaries
    assert sum(passed) > 19, summaries  # more than the argument tests of sysctl_facts alone
