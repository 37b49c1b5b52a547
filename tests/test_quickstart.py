"""The README's path, as a new user walks it: `make audit` on a fresh copy, then the commands it
prints and the README's commands, verbatim, from that copy's root.

The copy is the working tree's tracked and untracked-but-not-ignored files (what a clone of this
commit holds), so its ``.venv`` is new: it has ansible-core only, not the ``ansible`` package, and
``ansible.posix`` can come only from what ``make audit`` installs. Nothing the test suite sets for
itself (ANSIBLE_COLLECTIONS_PATH, ANSIBLE_PYTHON_INTERPRETER, ...) reaches these commands.
pip uses the wheelhouse (~/.cache/nsguard-sysctl/wheels) when the package index does not answer.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not (REPO / ".git").exists(), reason="needs the git checkout")]


def user_env() -> dict:
    """The environment of a shell that never ran the test suite."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ANSIBLE_", "PYTEST", "PYTHONPATH", "VIRTUAL_ENV"))}
    env["ANSIBLE_NOCOLOR"] = "1"
    return env


def sh(command: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=user_env(), capture_output=True, text=True,
                          timeout=timeout, check=False)


def readme_commands(text: str) -> list:
    """Every command line of the README's ```sh blocks (comments dropped)."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


@pytest.fixture(scope="module")
def audited(tmp_path_factory) -> dict:
    copy = tmp_path_factory.mktemp("fresh") / "nsguard-sysctl"
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        source = REPO / rel
        if source.is_file():
            (copy / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / rel)
    done = sh("make audit", copy)
    # exit status 2 is the audit's verdict on this machine (findings at or above error), not a failure
    assert done.returncode in (0, 2), done.stdout[-4000:] + done.stderr[-4000:]
    return {"root": copy, "stdout": done.stdout}


def test_make_audit_installs_what_the_remediation_needs(audited):
    root = audited["root"]
    site = next((root / ".venv" / "lib").glob("python3*/site-packages"))
    assert not (site / "ansible_collections").exists(), "the audit venv has the ansible package: the test proves nothing"
    installed = root / ".venv" / "collections" / "ansible_collections"
    assert (installed / "ansible" / "posix" / "plugins" / "modules" / "sysctl.py").is_file()
    # The installed copies are whole: their files match their manifests (no server contacted).
    for name in ("ansible.posix", "nsguard.sysctl"):
        verified = sh(".venv/bin/ansible-galaxy collection verify --offline %s" % name, root)
        assert verified.returncode == 0, verified.stdout + verified.stderr


def test_the_printed_remediation_command_runs(audited):
    root = audited["root"]
    lines = audited["stdout"].splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("fix:"))
    command = lines[index + 1].strip()
    assert command == ".venv/bin/ansible-playbook -i localhost, -c local reports/remediation.yml --check --diff"
    assert command in (root / "README.md").read_text()
    done = sh(command, root)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert "couldn't resolve module/action" not in done.stdout + done.stderr
    recap = re.search(r"^localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=0\s+failed=0", done.stdout, re.M)
    assert recap, done.stdout[-3000:]
    remediation = (root / "reports" / "remediation.yml").read_text()
    if "ansible.posix.sysctl:" in remediation:
        # the sysctl module really ran (check mode): its tasks are in the output
        assert re.search(r"^TASK \[.*\]", done.stdout, re.M)


def test_readme_commands_run_as_written(audited):
    root = audited["root"]
    commands = readme_commands((root / "README.md").read_text())
    adhoc = [c for c in commands if ".venv/bin/ansible localhost" in c and "nsguard.sysctl.sysctl_facts" in c]
    assert len(adhoc) == 2, commands  # the ad-hoc module and the facts-module form
    for command in adhoc:
        done = sh(command, root, timeout=300)
        assert done.returncode == 0, command + "\n" + done.stdout[-3000:] + done.stderr[-3000:]
        assert '"nsguard_sysctl": {' in done.stdout, command
        if "gather_facts" in command:
            assert '"ansible_kernel"' in done.stdout  # setup ran too
    # Outside the repository root the collections are not found without the variable, as the README says.
    elsewhere = sh("%s localhost -c local -m nsguard.sysctl.sysctl_facts" % shlex.quote(str(root / ".venv/bin/ansible")),
                   root.parent, timeout=300)
    assert elsewhere.returncode != 0
    assert "ANSIBLE_COLLECTIONS_PATH" in (root / "README.md").read_text()
