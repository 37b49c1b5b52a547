"""The filters through a real ansible-playbook run against localhost (-i localhost, -c local)."""
from __future__ import annotations

import json
import os

import pytest

from tests.ansible_run import run_playbook, write_playbook


def assert_task(that, vars=None, name="check"):
    task = {"name": name, "ansible.builtin.assert": {"that": that, "quiet": True}}
    if vars:
        task["vars"] = vars
    return task


def test_sysctl_scope_in_a_playbook(tmp_path):
    out = tmp_path / "scope.json"
    book = write_playbook(tmp_path / "scope.yml", [
        assert_task([
            "(key | nsguard.sysctl.sysctl_scope(kernel='5.10.30')).class == 'leaking'",
            "(key | nsguard.sysctl.sysctl_scope(kernel='5.10.35')).class == 'mirror'",
            "(key | nsguard.sysctl.sysctl_scope(kernel='6.18.44-fc-v669')).namespace == 'none'",
            "(key | nsguard.sysctl.sysctl_scope).gate.since == '5.13'",
            "('kernel.pid_max' | nsguard.sysctl.sysctl_scope(kernel='6.6')).class == 'global'",
            "('kernel.pid_max' | nsguard.sysctl.sysctl_scope(kernel='6.14')).namespace == 'pid'",
            "('net.core.somaxconn' | nsguard.sysctl.sysctl_scope(kernel='6.18.44')).class == 'isolated'",
            "('vm.max_map_count' | nsguard.sysctl.sysctl_scope).runtimes.runc.accepts is false",
        ], vars={"key": "net.netfilter.nf_conntrack_max"}),
        {"name": "several keys", "ansible.builtin.copy": {
            "dest": str(out),
            "content": "{{ ['net.core.rmem_max', 'net.ipv4.tcp_rmem'] | nsguard.sysctl.sysctl_scope(kernel='6.6') | to_json }}"}},
    ])
    run_playbook(book, check=True)
    many = json.loads(out.read_text())
    assert many["net.core.rmem_max"]["class"] == "host-only"
    assert many["net.ipv4.tcp_rmem"]["class"] == "isolated-inherited"


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="the facts module probes throwaway namespaces as root")
def test_sysctl_classify_on_this_host_s_facts(tmp_path):
    out = tmp_path / "classes.json"
    book = write_playbook(tmp_path / "classify.yml", [
        {"name": "gather", "nsguard.sysctl.sysctl_facts": {}},
        {"name": "classify", "ansible.builtin.set_fact": {
            "classes": "{{ ansible_facts.nsguard_sysctl | nsguard.sysctl.sysctl_classify }}"}},
        {"name": "the whole ansible_facts works too", "ansible.builtin.set_fact": {
            "classes2": "{{ ansible_facts | nsguard.sysctl.sysctl_classify }}"}},
        assert_task([
            "classes['net.core.netdev_max_backlog'].class == 'host-only'",
            "classes['net.core.netdev_max_backlog'].decided_by == 'probe'",
            "classes['vm.max_map_count'].class == 'global'",
            "classes['net.core.somaxconn'].namespace == 'net'",
            "classes['net.netfilter.nf_conntrack_max'].class == 'mirror'",
            "classes | length == classes2 | length",
            "classes | dict2items | selectattr('value.conflict') | list | length == 0",
        ]),
        {"name": "save", "ansible.builtin.copy": {"dest": str(out), "content": "{{ classes | to_json }}"}},
    ])
    run_playbook(book, check=True)
    classes = json.loads(out.read_text())
    assert len(classes) > 1000
    assert all({"class", "namespace", "evidence", "decided_by", "conflict"} <= set(v) for v in classes.values())


def test_filter_errors_are_clear(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "bad.yml").write_text("schema_version: 1\narea: site\nentries:\n  - id: x\n    match: [vm.a]\n"
                                  "    namespace: none\n    class: nope\n    sources: [{kind: emp, ref: r}]\n")
    book = write_playbook(tmp_path / "errors.yml", [
        {"name": "bad kernel", "ansible.builtin.debug": {
            "msg": "{{ 'vm.swappiness' | nsguard.sysctl.sysctl_scope(kernel='latest') }}"},
         "ignore_errors": True, "register": "bad_kernel"},
        {"name": "bad site knowledge", "ansible.builtin.debug": {
            "msg": "{{ 'vm.swappiness' | nsguard.sysctl.sysctl_scope(extra_dirs=[site]) }}"},
         "vars": {"site": str(site)}, "ignore_errors": True, "register": "bad_site"},
        {"name": "not facts", "ansible.builtin.debug": {"msg": "{{ {'a': 1} | nsguard.sysctl.sysctl_classify }}"},
         "ignore_errors": True, "register": "bad_facts"},
        {"name": "facts of version 1 with a bad key entry", "ansible.builtin.debug": {
            "msg": "{{ {'schema_version': 1, 'host': {'kernel': {'release': '6.18.0'}, 'keys': {'vm.x': 1}}}"
                   " | nsguard.sysctl.sysctl_classify }}"},
         "ignore_errors": True, "register": "bad_v1"},
        {"name": "facts of an unknown version", "ansible.builtin.debug": {
            "msg": "{{ {'schema_version': 7, 'host': {}} | nsguard.sysctl.sysctl_classify }}"},
         "ignore_errors": True, "register": "bad_version"},
        {"name": "facts of version 1 are read", "ansible.builtin.set_fact": {
            "v1_classes": "{{ {'schema_version': 1, 'host': {'kernel': {'release': '6.18.0'}, 'keys': "
                          "{'vm.max_map_count': {'value': '65530', 'mode': '0644'}}}} | nsguard.sysctl.sysctl_classify }}"}},
        assert_task([
            "bad_v1 is failed and '$.host.keys[\"vm.x\"]: 1 is not a schema_version 1 key entry' in bad_v1.msg",
            "bad_version is failed and '$.schema_version: 7 is not a facts version this controller reads' in bad_version.msg",
            "v1_classes['vm.max_map_count']['class'] == 'global'",
            "bad_kernel is failed and \"option 'kernel': not a kernel release: 'latest'\" in bad_kernel.msg",
            f"bad_site is failed and '{site}/bad.yml: $.entries[0].class' in bad_site.msg",
            "bad_facts is failed and 'no \\'host\\' mapping' in bad_facts.msg",
        ]),
    ])
    proc = run_playbook(book)
    assert proc.returncode == 0, proc.stdout[-4000:]
