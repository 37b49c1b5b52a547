"""Remediation tasks through the real thing: every rendered task passes ``--syntax-check`` and
matches its module's documented options; host tasks run in ``--check`` against localhost (and
are skipped where the host guard says "inside a container"); one host remediation is applied
for real, re-run idempotently, and reverted."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.nsguard.sysctl.plugins.plugin_utils import expectations as ex
from ansible_collections.nsguard.sysctl.plugins.plugin_utils import evaluator, rule_catalog
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.knowledge import load_knowledge
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.remediation import RemediationOptions
from tests.integration.test_audit_support import (HostSysctls, PLAYBOOK_BIN, findings_of, read_sysctl, run_playbook,
                                                  spawn_named, write_playbook)

pytestmark = [pytest.mark.root, pytest.mark.slow]

MODULE_KEYS = ("ansible.posix.sysctl", "community.docker.docker_container", "containers.podman.podman_container",
               "kubernetes.core.k8s", "ansible.builtin.lineinfile", "ansible.builtin.command")
GATHER_MINIMAL = {"name": "Gather the nsguard facts the host guard reads",
                  "nsguard.sysctl.sysctl_facts": {"containers": False, "probe": False, "include": ["vm.*"]}}


def module_of(task):
    [name] = [k for k in task if k in MODULE_KEYS]
    return name


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    path = tmp_path_factory.mktemp("remediation")
    (path / "sysctl.d").mkdir()
    (path / "lxc").mkdir()
    return path


@pytest.fixture(scope="module")
def audited(work):
    """A real audit: an Elasticsearch-like process (unidentified) wanting more map areas than
    the host has; remediation files pointed at a temporary directory."""
    es = spawn_named("nsg-rem-es", "java org.elasticsearch.bootstrap.Elasticsearch")
    current = int(read_sysctl("vm.max_map_count"))
    try:
        run = run_playbook("nsguard.sysctl.audit", {
            "nsguard_sysctl_fail_on": "never", "nsguard_sysctl_report": False,
            "nsguard_sysctl_remediation_sysctl_d_dir": str(work / "sysctl.d"),
            "nsguard_sysctl_lxc_path": str(work / "lxc"),
            "nsguard_sysctl_expectations": [{"profile": "it", "match": {"name": "nsg-rem-*"},
                                             "expect": {"vm.max_map_count": ">=%d" % (current + 1)}}],
        }, workdir=work)
    finally:
        es.kill()
    assert run.rc == 0, run.stderr[-2000:]
    return run, es.pid, current


@pytest.fixture(scope="module")
def constructed(work):
    """Findings of every rule's catalog examples plus one container-spec finding per runtime,
    rendered with the same remediation options."""
    catalog = rule_catalog.load_catalog()
    kb = load_knowledge()
    profiles, dummy = ex.load_profiles()
    options = RemediationOptions(sysctl_d_dir=str(work / "sysctl.d"), lxc_path=str(work / "lxc"))
    findings = []
    for rule in catalog:
        for example in rule.examples["positive"]:
            extra = [e for d in example.get("expectations") or [] for e in ex.expectations_from_data(d, "x")[0]]
            findings += evaluator.evaluate(rule_catalog.example_facts(example["facts"]), rule_catalog.example_classification(example.get("classes")),
                                   catalog, profiles + extra, options=options, kb=kb)
    identities = [{"runtime": "docker", "name": "web", "image": "nginx:1"},
                  {"runtime": "podman", "name": "cache", "image": "redis:7"},
                  {"runtime": "lxc", "name": "ct1"},
                  {"runtime": "containerd", "name": "app", "pod_name": "web-5d8f7c9b6-x7k2p", "pod_namespace": "prod"},
                  {"runtime": "netns", "netns_name": "blue"}]
    for identity in identities:
        facts = rule_catalog.example_facts({
            "host": {"keys": {"net.core.somaxconn": "8192"}, "modes": {"net.core.somaxconn": "0644"},
                     "persisted": {"keys": {"net.core.somaxconn": {"value": "8192", "file": "/etc/sysctl.conf",
                                                                   "line": 1}}}},
            "namespace_sets": [{"identity": identity, "privileges": {"privileged": True, "userns_is_host": True},
                                "view": {"differs": {"net.core.somaxconn": {"host": "8192", "container": "4096"}}}}]})
        findings += evaluator.evaluate(facts, rule_catalog.example_classification({"net.core.somaxconn": {"class": "isolated",
                                                                                       "namespace": "net"}}),
                               catalog, options=options, kb=kb)
    return findings


def all_tasks(findings):
    return [t for f in findings for t in f["remediation"]["tasks"]]


def test_every_runtime_and_rule_renders_tasks(audited, constructed):
    run, dummy1, dummy2 = audited
    modules = {module_of(t) for t in all_tasks(constructed + run.findings)}
    assert modules == set(MODULE_KEYS)
    rules_with_tasks = {f["rule"] for f in constructed if f["remediation"]["tasks"]}
    assert rules_with_tasks == {"NSG%03d" % i for i in range(1, 11)}  # NSG010 (requested names) too


def test_every_task_passes_syntax_check(audited, constructed, work):
    run, dummy1, dummy2 = audited
    tasks = all_tasks(constructed + run.findings)
    playbook = write_playbook(work / "all-tasks.yml", [{"name": "every remediation task", "hosts": "localhost",
                                                        "gather_facts": False, "tasks": tasks}])
    proc = subprocess.run([PLAYBOOK_BIN, "-i", "localhost,", "--syntax-check", str(playbook)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "playbook: %s" % playbook in proc.stdout


def _spec(options):
    spec = {}
    for name, doc in (options or {}).items():
        entry = {"type": doc.get("type", "str")}
        for field in ("elements", "choices", "aliases", "required"):
            if field in doc:
                entry[field] = doc[field]
        if doc.get("suboptions"):
            entry["options"] = _spec(doc["suboptions"])
        spec[name] = entry
    return spec


def test_task_arguments_match_the_modules_documented_options(audited, constructed):
    """What --syntax-check does not look at: every argument exists, has the documented type
    and an allowed value (validated with Ansible's own ArgumentSpecValidator)."""
    run, dummy1, dummy2 = audited
    docs = json.loads(subprocess.run([str(Path(sys.executable).parent / "ansible-doc"), "-j", *MODULE_KEYS],
                                     capture_output=True, text=True, check=True, timeout=120).stdout)
    checked = 0
    for task in all_tasks(constructed + run.findings):
        module = module_of(task)
        spec = _spec(docs[module]["doc"]["options"])
        if module == "ansible.builtin.command":
            spec.setdefault("argv", {"type": "list", "elements": "str"})
        result = ArgumentSpecValidator(spec).validate(dict(task[module]))
        assert not result.error_messages, (module, task[module], result.error_messages)
        assert set(task) <= {"name", module, "when", "tags", "delegate_to", "changed_when", "register"}
        checked += 1
    assert checked >= 20


def guarded_play(tasks, gather_nsguard=True, gather_facts=False):
    return {"name": "remediation", "hosts": "localhost", "gather_facts": gather_facts,
            "tasks": ([GATHER_MINIMAL] if gather_nsguard else []) + tasks}


def test_host_and_lxc_tasks_run_in_check_mode(audited, constructed, work):
    run, dummy, current = audited
    host_tasks = [t for t in all_tasks(constructed + run.findings) if module_of(t) == "ansible.posix.sysctl"]
    lxc_tasks = [t for t in all_tasks(constructed) if module_of(t) == "ansible.builtin.lineinfile"]
    configs = {}
    for task in lxc_tasks:  # an LXC config to edit, as lxc-create leaves one, with the lines to drop
        args = task["ansible.builtin.lineinfile"]
        lines = configs.setdefault(args["path"], ["lxc.uts.name = x", "lxc.mount.auto = proc:rw"])
        if args["state"] == "absent":
            lines.append(task["name"].split(" without ")[1].split(" in the config")[0] + " = 1")
    for path, lines in configs.items():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text("\n".join(lines) + "\n")
    before = {p: p.read_text() for p in (work / "lxc").rglob("config")}
    netns_tasks = [t for t in all_tasks(constructed) if module_of(t) == "ansible.builtin.command"]
    playbook = write_playbook(work / "check.yml", [guarded_play(host_tasks + lxc_tasks + netns_tasks)])
    result = run_playbook(str(playbook), workdir=work, args=["--check", "--diff"])
    assert result.rc == 0, result.stdout[-3000:]
    for task in host_tasks:
        [res] = result.task_results(task["name"])[-1:]
        assert not res.get("skipped") and not res.get("failed"), (task["name"], res)
    for task in lxc_tasks:
        res = result.task_result(task["name"])
        assert res["changed"] is True and not res.get("failed"), res
    for task in netns_tasks:  # ansible.builtin.command does not run in check mode
        assert result.task_result(task["name"]).get("skipped") is True
    # check mode changed nothing
    assert int(read_sysctl("vm.max_map_count")) == current
    assert list((work / "sysctl.d").iterdir()) == []
    assert {p: p.read_text() for p in (work / "lxc").rglob("config")} == before


def test_host_guard_skips_when_only_ansibles_virtual_facts_say_container(audited, work):
    """This VM has a stray /.dockerenv, so Ansible's setup calls it a docker guest: without the
    nsguard facts the host tasks must not run (fail closed), never the other way round."""
    run, dummy1, dummy2 = audited
    host_tasks = list(t for t in all_tasks(run.findings) if module_of(t) == "ansible.posix.sysctl")[:1]
    assert host_tasks
    playbook = write_playbook(work / "virtual.yml", [dict(guarded_play(host_tasks, gather_nsguard=False,
                                                                       gather_facts=True),
                                                          gather_subset=["!all", "!min", "virtual"])])
    result = run_playbook(str(playbook), workdir=work, args=["--check"])
    assert result.rc == 0, result.stdout[-2000:]
    facts = result.task_result("Gathering Facts")["ansible_facts"]
    res = result.task_result(host_tasks[0]["name"])
    in_container = ("container" in facts.get("ansible_virtualization_tech_guest", [])
                    or (facts.get("ansible_virtualization_role") == "guest"
                        and facts.get("ansible_virtualization_type") in ("docker", "lxc", "podman", "container")))
    assert res.get("skipped") is in_container


def test_one_host_remediation_applied_for_real_then_reverted(audited, work):
    """NSG003's task raises vm.max_map_count for the Elasticsearch-like process: run it for
    real, check the kernel and the file, run it again (no change), restore the host."""
    run, pid, current = audited
    [finding] = [f for f in findings_of(run, "NSG003", "vm.max_map_count")
                 if f["container"] and f["container"]["pid"] == pid]
    [task] = finding["remediation"]["tasks"]
    args = task["ansible.posix.sysctl"]
    target = int(args["value"])
    assert target > current and Path(args["sysctl_file"]).parent == work / "sysctl.d"
    playbook = write_playbook(work / "apply.yml", [guarded_play([task])])
    host = HostSysctls()
    host.track("vm.max_map_count")
    try:
        first = run_playbook(str(playbook), workdir=work)
        host.claim("vm.max_map_count")
        assert first.rc == 0, first.stdout[-2000:]
        assert first.task_result(task["name"])["changed"] is True
        assert int(read_sysctl("vm.max_map_count")) == target
        assert Path(args["sysctl_file"]).read_text().strip() == "vm.max_map_count=%d" % target
        again = run_playbook(str(playbook), workdir=work)
        assert again.rc == 0 and again.task_result(task["name"])["changed"] is False
    finally:
        problems = host.restore()
        Path(args["sysctl_file"]).unlink(missing_ok=True)
    assert problems == [] and int(read_sysctl("vm.max_map_count")) == current
