"""Findings are never older than the facts they describe (issue 12, item 2).

The sequence a user ran: the audit role with a jsonfile fact cache, then a new namespace set
starts, then the facts are gathered again as a facts module
(``ANSIBLE_FACTS_MODULES=ansible.builtin.setup,nsguard.sysctl.sysctl_facts``), then
``nsguard.sysctl.report`` from the cache. The report used to show the new set but none of its
findings (cached findings were reused whenever defined). Real playbooks, real namespaces.
"""
from __future__ import annotations

import json

import pytest

from tests.ansible_run import run_playbook
from tests.integration.nsfixtures import spawn_set

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_report_from_the_cache_lints_the_facts_it_shows(tmp_path):
    env = {"ANSIBLE_CACHE_PLUGIN": "ansible.builtin.jsonfile", "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(tmp_path / "cache"),
           "ANSIBLE_CACHE_PLUGIN_TIMEOUT": "3600"}
    audit = tmp_path / "audit.yml"
    audit.write_text(json.dumps([{"name": "audit", "hosts": "localhost", "gather_facts": False, "roles": [{
        "role": "nsguard.sysctl.audit", "nsguard_sysctl_fail_on": "never", "nsguard_sysctl_probe": False,
        "nsguard_sysctl_report_dir": str(tmp_path / "first")}]}]))
    run_playbook(audit, env=env, check=True)
    first = json.loads((tmp_path / "first" / "fleet.json").read_text())

    made = spawn_set(flags=("-n", "-u"))   # a new set: root in the host's user namespace (NSG006)
    try:
        gather = tmp_path / "gather.yml"
        gather.write_text(json.dumps([{"name": "gather", "hosts": "localhost", "gather_facts": True, "tasks": []}]))
        # Ansible's gather_timeout (10 s by default) bounds each facts module: on a loaded 2-core
        # machine the gather has taken 14.7 s, so give it the module's own default deadline
        run_playbook(gather, env=dict(env, ANSIBLE_FACTS_MODULES="ansible.builtin.setup,nsguard.sysctl.sysctl_facts",
                                      ANSIBLE_GATHER_SUBSET="min", ANSIBLE_GATHER_TIMEOUT="120"), check=True)
        run_playbook("nsguard.sysctl.report", "-e", "nsguard_sysctl_report_dir=%s" % (tmp_path / "again"),
                     env=env, check=True)
    finally:
        made.kill()
    again = json.loads((tmp_path / "again" / "fleet.json").read_text())
    new = [c for c in again["containers"] if "net:%d" % made.ns["net"] in (c["set_id"] or "")]
    assert new, "the new set is in the report"
    assert not any("net:%d" % made.ns["net"] in (c["set_id"] or "") for c in first["containers"])
    ids = {c["set_id"] for c in new}
    found = [f for f in again["findings"] if f["set_id"] in ids]
    assert found, "the new set's findings are in the report"
    assert {c["findings"]["total"] for c in new} != {0}
