"""A hostile target never runs code on the controller nor silences the fleet report (issue 11).

Everything goes through real playbooks: the ``nsguard.sysctl.audit`` role gathers real facts on
localhost aliases while

- a sysctl.d directory the test made holds a file whose *name* and a *value* are Jinja
  (``{{ lookup('pipe', 'touch MARKER') }}``), as a tenant's image or bind mount could;
- a real named network namespace carries a Jinja name;
- two aliases run their modules through a wrapper interpreter that rewrites the real
  ``sysctl_facts`` result as a host an attacker has taken over would: forged findings with a
  ``when: lookup('pipe', ...)``, a forged registered lint result, facts that shadow the role's
  variables (``nsguard_sysctl_skip_rules``), ``host`` of the wrong type, a set whose
  ``identity`` is a list.

Then the generated remediation.yml is run with ``--check`` and ``--check --diff``. No marker
file may appear (the payloads only ``touch`` a file in the controller's working directory), the
innocent host is reported with its findings and the hostile ones as ``failed`` with the reason.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.ansible_run import ansible_env

pytestmark = [pytest.mark.root, pytest.mark.slow]

MARK = "nsgmark"   # relative: created in the controller's cwd (the test's tmp dir) if anything templates
JINJA = "{{ lookup('pipe', 'touch %s') }}" % MARK


FORGE = r'''
import json, sys
mode = sys.argv[1]
text = sys.stdin.read()
try:
    result = json.loads(text[text.index("{"):])
except ValueError:
    sys.stdout.write(text); sys.exit(0)
facts = result.get("ansible_facts") or {}
if "nsguard_sysctl" not in facts:
    sys.stdout.write(text); sys.exit(0)
jinja = %(jinja)r
forged_task = {"name": "forged " + jinja, "ansible.builtin.debug": {"msg": "x"},
               "when": "lookup('pipe', 'touch %(mark)s-when') is string", "vars": {"ansible_connection": "local"}}
finding = {"rule": "NSG001", "rule_name": "x", "severity": "error", "host": "h", "set_id": None,
           "container": None, "key": "vm.max_map_count", "message": "forged",
           "remediation": {"where": "host", "tasks": [forged_task]}}
if mode == "forged":
    facts["nsguard_sysctl_findings"] = [finding]
    facts["nsguard_sysctl_lint_result"] = {"findings": [finding], "counts": {"error": 1, "warning": 0, "info": 0},
                                           "nsguard_lint": {"version": 1,
                                                            "gathered_at": facts["nsguard_sysctl"]["gathered_at"]}}
    facts["nsguard_sysctl_skip_rules"] = ["NSG001", "NSG002", "NSG003", "NSG004"]
    facts["nsguard_sysctl"]["host"] = ["not", "a", "mapping"]
elif mode == "badset":
    sets = facts["nsguard_sysctl"]["namespace_sets"] or [{"id": "x"}]
    sets[0]["identity"] = ["a", "list"]
    sets[0]["init"] = "a string"
    facts["nsguard_sysctl"]["namespace_sets"] = sets
sys.stdout.write(json.dumps(result))
''' % {"jinja": JINJA, "mark": MARK}


def _wrapper(tmp: Path, mode: str) -> str:
    forge = tmp / "forge.py"
    forge.write_text(FORGE)
    path = tmp / ("python-%s" % mode)
    path.write_text(textwrap.dedent("""\
        #!/bin/sh
        # a compromised target: runs the real module, then rewrites its result
        %(py)s "$@" | %(py)s %(forge)s %(mode)s
        """ % {"py": sys.executable, "forge": forge, "mode": mode}))
    path.chmod(0o755)
    return str(path)


@pytest.fixture(scope="module")
def hostile_netns():
    # A module fixture is set up once per xdist worker: the pid keeps two workers' names apart.
    name = "nsg%d-{{ lookup('pipe', 'touch %s-netns') }}" % (os.getpid(), MARK)
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture(scope="module")
def audit(tmp_path_factory, hostile_netns):
    tmp = tmp_path_factory.mktemp("trust")
    sysctl_d = tmp / "sysctl.d"
    sysctl_d.mkdir()
    # a persisted value that drifts from the running one (NSG008) in a file whose name is Jinja
    # (global keys: NSG008 compares those; nothing is ever written, remediation runs in --check)
    running = int(Path("/proc/sys/vm/swappiness").read_text())
    (sysctl_d / ("99-%s.conf" % JINJA)).write_text("vm.swappiness = %d\nvm.overcommit_ratio = %s\n"
                                                    % (running + 1 if running < 200 else running - 1, JINJA))
    inventory = {"all": {"hosts": {
        "clean": {"ansible_connection": "local"},
        "forged": {"ansible_connection": "local", "ansible_python_interpreter": _wrapper(tmp, "forged")},
        "badset": {"ansible_connection": "local", "ansible_python_interpreter": _wrapper(tmp, "badset")},
    }}}
    (tmp / "inventory.json").write_text(json.dumps(inventory))
    book = tmp / "audit.yml"
    book.write_text(json.dumps([{"name": "audit", "hosts": "all", "gather_facts": False, "roles": [{
        "role": "nsguard.sysctl.audit", "nsguard_sysctl_fail_on": "never",
        "nsguard_sysctl_report_dir": str(tmp / "reports"), "nsguard_sysctl_sysctl_d_dirs": [str(sysctl_d)],
        "nsguard_sysctl_sysctl_conf": "", "nsguard_sysctl_remediation_sysctl_d_dir": str(sysctl_d),
        "nsguard_sysctl_probe": False}]}]))
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(tmp / "inventory.json"),
                           str(book)], cwd=tmp, env=_env(), capture_output=True, text=True, timeout=900, check=False)
    return {"tmp": tmp, "proc": proc, "reports": tmp / "reports", "inventory": str(tmp / "inventory.json")}


def _env() -> dict:
    return ansible_env()


def _marks(tmp: Path) -> list:
    return sorted(p.name for p in tmp.iterdir() if p.name.startswith(MARK))


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_constructor("!unsafe", lambda loader, node: ("UNSAFE", loader.construct_scalar(node)))


def _unmarked_jinja(value, found, path="$"):
    if isinstance(value, dict):
        for key, item in value.items():
            _unmarked_jinja(key, found, path + "<key>")
            _unmarked_jinja(item, found, "%s.%s" % (path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _unmarked_jinja(item, found, "%s[%d]" % (path, index))
    elif isinstance(value, str) and re.search(r"\{\{|\{%|\{#", value) and MARK in value:
        found.append((path, value))


def test_the_fleet_report_survives_hostile_hosts(audit):
    proc, tmp = audit["proc"], audit["tmp"]
    assert (audit["reports"] / "fleet.json").exists(), proc.stdout[-4000:] + proc.stderr[-2000:]
    doc = json.loads((audit["reports"] / "fleet.json").read_text())
    hosts = {h["name"]: h for h in doc["hosts"]}
    assert hosts["clean"]["status"] == "ok" and hosts["clean"]["findings"]["total"] > 0
    # the forged host: its shadowing facts are named, nothing it sent is reported as a finding
    assert hosts["forged"]["status"] == "failed"
    assert "nsguard_sysctl_lint_result" in hosts["forged"]["message"]
    assert "nsguard_sysctl_skip_rules" in hosts["forged"]["message"]
    # the malformed set: failed with the JSON path that is wrong
    assert hosts["badset"]["status"] == "failed"
    assert "$.namespace_sets[0]" in hosts["badset"]["message"], hosts["badset"]["message"]
    assert not any(f["host"] in ("forged", "badset") for f in doc["findings"])
    assert "forged" not in {f["message"] for f in doc["findings"]}
    # the tenant's sysctl.d file and the netns are reported, as data
    assert any(f["rule"] == "NSG008" for f in doc["findings"] if f["host"] == "clean"), [f["rule"] for f in doc["findings"]]
    assert _marks(tmp) == []


def test_remediation_playbook_never_templates_tenant_text(audit, hostile_netns):
    tmp = audit["tmp"]
    path = audit["reports"] / "remediation.yml"
    text = path.read_text()
    assert "forged {{" not in text and "touch %s-when" % MARK not in text     # the forged task never written
    assert JINJA in text                                   # the hostile file name is there, as data
    found = []
    _unmarked_jinja(yaml.load(text, Loader=_Loader), found)
    assert found == [], found
    # the clean host only (the others have nothing to remediate), against this machine
    inventory = tmp / "remediate.json"
    inventory.write_text(json.dumps({"all": {"hosts": {"clean": {"ansible_connection": "local"}}}}))
    for args in (["--check"], ["--check", "--diff"]):
        proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), str(path),
                               *args], cwd=tmp, env=_env(), capture_output=True, text=True, timeout=600, check=False)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        assert "lookup('pipe', 'touch %s')" % MARK in proc.stdout     # shown as text in a task name
    assert _marks(tmp) == []
    assert sorted(os.listdir(tmp / "sysctl.d")) == ["99-%s.conf" % JINJA]     # nothing written
