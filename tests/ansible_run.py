"""Run real ``ansible-playbook`` / ``ansible`` commands against localhost from tests.

One helper for every test that goes through Ansible: it uses the venv's interpreter for the
target side, the working tree's collection (``ANSIBLE_COLLECTIONS_PATH`` from conftest), and
returns the completed process so tests can assert on rc, stdout and files the play wrote.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def ansible_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env.update({
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        "ANSIBLE_DEPRECATION_WARNINGS": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    })
    if extra:
        env.update(extra)
    return env


def run_playbook(playbook: Path | str, *args: str, inventory: str = "localhost,", env: dict | None = None,
                 timeout: float = 600, check: bool = False) -> subprocess.CompletedProcess:
    """``ansible-playbook -i INVENTORY -c local PLAYBOOK ARGS``; ``check`` asserts rc 0."""
    cmd = [str(BIN / "ansible-playbook"), "-i", inventory, str(playbook), *args]
    if inventory == "localhost,":
        cmd[3:3] = ["-c", "local"]
    proc = subprocess.run(cmd, env=ansible_env(env), capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed rc={proc.returncode}\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}")
    return proc


def write_playbook(path: Path, tasks: list, *, gather_facts: bool = False, hosts: str = "localhost") -> Path:
    """A one-play playbook; ``tasks`` are dicts (YAML is JSON's superset)."""
    play = [{"name": "test play", "hosts": hosts, "gather_facts": gather_facts, "tasks": tasks}]
    path.write_text(json.dumps(play, indent=2))
    return path


def gather_facts_via_playbook(tmp_path: Path, module_args: dict | None = None, *extra: str,
                              env: dict | None = None) -> dict:
    """Run ``nsguard.sysctl.sysctl_facts`` through a real playbook; return the facts it set."""
    out = tmp_path / "facts.json"
    book = write_playbook(tmp_path / "gather.yml", [
        {"name": "gather", "nsguard.sysctl.sysctl_facts": module_args or {}},
        {"name": "save", "ansible.builtin.copy": {
            "content": "{{ ansible_facts.nsguard_sysctl | to_json }}", "dest": str(out)}},
    ])
    run_playbook(book, *extra, env=env, check=True)
    return json.loads(out.read_text())
