"""The audit playbook end to end: ``ansible-playbook nsguard.sysctl.audit`` against localhost
with namespace sets this module makes (``unshare``, ``ip netns``), a host-tuned somaxconn that a
fresh network namespace does not inherit, and a sysctl.d directory that drifts from the
running values. Every finding checked here comes from the real gather, classifier and rules.
"""
from __future__ import annotations

import itertools
import json
import os
import re

import pytest

from tests.integration.test_audit_support import (HostSysctls, findings_of, named_netns, read_sysctl,
                                                  run_playbook, spawn_named)

pytestmark = [pytest.mark.root, pytest.mark.slow]

ES_ARGV0 = "java -Xms1g org.elasticsearch.bootstrap.Elasticsearch"


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """Everything the audit should notice, made for real, undone at the end."""
    if os.geteuid() != 0:
        pytest.skip("needs root: namespaces and host sysctls")
    work = tmp_path_factory.mktemp("audit")
    somaxconn_before = read_sysctl("net.core.somaxconn")
    max_map_count = int(read_sysctl("vm.max_map_count"))
    tuned = str(int(somaxconn_before) + 7)
    sysctl_d = work / "sysctl.d"
    sysctl_d.mkdir()
    drift_file = sysctl_d / "50-nsg-it.conf"
    drift_file.write_text("net.core.somaxconn = %s\n# persisted, not applied:\nvm.max_map_count = %d\n"
                          % (tuned, max_map_count + 1))
    es = spawn_named("nsg-srch-node", ES_ARGV0)
    netns = named_netns()
    host = HostSysctls()
    host.set("net.core.somaxconn", tuned)
    try:
        yield {"work": work, "sysctl_d": sysctl_d, "drift_file": drift_file, "es": es, "netns": netns,
               "tuned": tuned, "somaxconn_before": somaxconn_before, "max_map_count": max_map_count}
    finally:
        problems = host.restore()
        es.kill()
        netns.close()
    assert problems == []


def audit_vars(scene, **more):
    out = {
        "nsguard_sysctl_sysctl_d_dirs": [str(scene["sysctl_d"])],
        "nsguard_sysctl_sysctl_conf": "",
        "nsguard_sysctl_report_dir": str(scene["work"] / "reports"),
        "nsguard_sysctl_remediation_sysctl_d_dir": str(scene["work"] / "remediation.d"),
        "nsguard_sysctl_expectations": [{
            "profile": "site-search", "match": {"name": "nsg-srch-*"},
            "expect": [{"key": "vm.max_map_count", "min": scene["max_map_count"] + 1, "severity": "warning",
                        "why": "our search nodes want more than the host has"}]}],
    }
    out.update(more)
    return out


@pytest.fixture(scope="module")
def audit(scene):
    """One full audit with fail_on=error, while the scene is up."""
    return run_playbook("nsguard.sysctl.audit", audit_vars(scene), workdir=scene["work"])


def set_of(run, pid):
    facts = run.task_result("Gather the sysctl facts")["ansible_facts"]["nsguard_sysctl"]
    for nset in facts["namespace_sets"]:
        if nset["representative_pid"] == pid or pid in nset["pids"]:
            return nset
    raise AssertionError("no namespace set holds pid %d" % pid)


def test_audit_fails_on_errors_after_writing_the_reports(audit, scene):
    # NSG006: a root ``unshare`` in the host's user namespace holds every capability and a
    # writable /proc/sys, so there is at least one error and fail_on=error fails the host
    assert audit.rc == 2, audit.stderr[-2000:]
    # the lint task itself fails the host (no task after it on every host), with the counts
    failed = audit.task_result("Evaluate the lint rules")
    assert failed["failed"] is True and "nsguard_sysctl_fail_on=error" in failed["msg"]
    counts = failed["counts"]
    assert failed["msg"].startswith("localhost has %d error and %d warning" % (counts["error"], counts["warning"]))
    # a failed result is printed whole: it leaves the findings out, the report has them
    assert "findings" not in failed and failed["findings_left_out"] == len(audit.findings) > 0
    # no set_fact (a fact can be forged by the target, docs/reliability.md); the action prints
    # the summary itself, one round trip less
    assert not audit.task_results("Keep the findings") and not audit.task_results("Print the summary")
    assert not audit.task_results("Fail on findings")
    head = re.search(r"^nsguard\.sysctl localhost: .*$", audit.stdout, re.M).group(0)
    assert "findings (%d error" % counts["error"] in head
    printed = audit.stdout.split(head, 1)[1].split("\n")[1:]
    summary = [head] + [line[2:] for line in itertools.takewhile(lambda line: line.startswith("  "), printed)]
    # other engineers' namespace sets may be on this host too: at most 50 lines, then "... more"
    assert len(summary) == 1 + min(len(audit.findings), 50) + (len(audit.findings) > 50)
    if len(audit.findings) > 50:
        assert summary[-1].startswith("... %d more" % (len(audit.findings) - 50))
    # the report runs in the role's always section: the failed host is in it, ok, with its findings
    report = json.loads((scene["work"] / "reports" / "fleet.json").read_text())
    [row] = report["hosts"]
    assert row["status"] == "ok" and row["findings"]["total"] == len(audit.findings) == sum(counts.values())
    assert any(f["rule"] == "NSG006" for f in report["findings"])


def test_elasticsearch_like_process_under_a_low_max_map_count(audit, scene):
    """The unshare'd process is unidentified; the built-in Elasticsearch profile matches its
    command line, the user expectation its name."""
    es_set = set_of(audit, scene["es"].pid)
    assert es_set["identity"]["runtime"] == "unknown" and es_set["init"]["comm"] == "nsg-srch-node"
    found = [f for f in findings_of(audit, "NSG003", "vm.max_map_count") if f["set_id"] == es_set["id"]]
    assert len(found) == 1
    finding = found[0]
    host_value = int(finding["values"]["host"])
    assert host_value == scene["max_map_count"]
    profiles = {e["profile"] for e in finding["details"]["expectations"]}
    assert "site-search" in profiles
    if host_value < 262144:  # the kernel default 65530 on a fresh host: the bootstrap check fails
        assert "elasticsearch" in profiles and finding["severity"] == "error"
    assert finding["class"] == "global" and finding["container"]["label"] == "nsg-srch-node[%d]" % scene["es"].pid
    [task] = finding["remediation"]["tasks"]
    args = task["ansible.posix.sysctl"]
    assert args["name"] == "vm.max_map_count" and int(args["value"]) >= max(host_value + 1, 262144)
    assert args["sysctl_file"] == str(scene["work"] / "remediation.d" / "90-nsguard-vm.max_map_count.conf")


def test_host_tuned_somaxconn_not_inherited_by_a_fresh_netns(audit, scene):
    netns_set = set_of(audit, scene["netns"].proc.pid)
    assert netns_set["view"]["differs"]["net.core.somaxconn"] == {"host": scene["tuned"],
                                                                  "container": scene["somaxconn_before"]}
    found = [f for f in findings_of(audit, "NSG004", "net.core.somaxconn") if f["set_id"] == netns_set["id"]]
    assert len(found) == 1
    finding = found[0]
    assert finding["severity"] == "warning" and finding["class"] == "isolated" and finding["namespace"] == "net"
    assert "persisted in %s:1" % scene["drift_file"] in finding["details"]["tuned_by"]
    assert finding["remediation"]["where"] == "container-spec"
    if netns_set["identity"]["runtime"] == "netns":  # named by its bind mount in /run/netns
        [task] = finding["remediation"]["tasks"]
        argv = task["ansible.builtin.command"]["argv"]
        assert argv[:6] + argv[7:] == ["ip", "netns", "exec", scene["netns"].name, "sh", "-c", "nsguard",
                                       "net.core.somaxconn=%s" % scene["tuned"]]


def test_drift_between_sysctl_d_and_runtime(audit, scene):
    [finding] = findings_of(audit, "NSG008", "vm.max_map_count")
    assert finding["values"]["persisted"] == str(scene["max_map_count"] + 1)
    assert finding["values"]["host"] == str(scene["max_map_count"])
    assert finding["details"]["file"] == str(scene["drift_file"]) and finding["details"]["line"] == 3
    # the unshare'd root process could have written it
    assert "nsg-srch-node[%d]" % scene["es"].pid in finding["details"]["writers"]
    # somaxconn's persisted value is the running one: no drift reported for it
    assert findings_of(audit, "NSG008", "net.core.somaxconn") == []


def test_privileged_namespace_set_can_change_global_keys(audit, scene):
    es_set = set_of(audit, scene["es"].pid)
    [finding] = [f for f in findings_of(audit, "NSG006") if f["set_id"] == es_set["id"]]
    assert finding["severity"] == "error"
    assert "vm.max_map_count" in finding["details"]["exposed_keys"]
    assert finding["remediation"]["tasks"] == [] and "not identified as a container" in finding["remediation"]["note"]


def test_fail_on_thresholds_and_the_human_summary(scene):
    """Without namespace sets the findings are host-level (the drift is a warning)."""
    fast = audit_vars(scene, nsguard_sysctl_containers=False, nsguard_sysctl_probe=False,
                      nsguard_sysctl_report=False, nsguard_sysctl_expectations=[])
    never = run_playbook("nsguard.sysctl.audit", dict(fast, nsguard_sysctl_fail_on="warning"),
                         workdir=scene["work"], json_output=False)
    assert never.rc == 2 and "nsguard_sysctl_fail_on=warning" in never.stdout
    assert "nsguard.sysctl localhost:" in never.stdout and "NSG008 vm.max_map_count [host]" in never.stdout
    errors_only = run_playbook("nsguard.sysctl.audit", dict(fast, nsguard_sysctl_fail_on="error"),
                               workdir=scene["work"], json_output=False)
    assert errors_only.rc == 0, errors_only.stdout[-2000:]
    assert "fatal: [localhost]" not in errors_only.stdout and "nsguard_sysctl_fail_on=error" not in errors_only.stdout


def test_bad_user_input_is_reported_and_the_audit_goes_on(scene, tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "SITE001-broken.yml").write_text("id: SITE001\nname: [\n")
    run = run_playbook("nsguard.sysctl.audit", audit_vars(
        scene, nsguard_sysctl_containers=False, nsguard_sysctl_probe=False, nsguard_sysctl_report=False,
        nsguard_sysctl_fail_on="never", nsguard_sysctl_rules_dirs=[str(rules)],
        nsguard_sysctl_expectations=[{"profile": "x", "match": {"image": "x"}, "expect": {"vm.swappiness": ">=lots"}}],
        nsguard_sysctl_rule_params={"NSG005": {"top": "many"}}), workdir=scene["work"])
    assert run.rc == 0
    errors = run.task_result("Evaluate the lint rules")["errors"]
    text = " | ".join("%s %s %s" % (e["file"], e["path"], e["message"]) for e in errors)
    assert "SITE001-broken.yml line 3 column 1 not valid YAML" in text
    assert "expectations[0] $.expect[\"vm.swappiness\"]" in text
    assert "rule_params $.NSG005.top 'many' is not a valid integer" in text
    assert findings_of(run, "NSG008", "vm.max_map_count")  # the rules still ran
    bad_choice = run_playbook("nsguard.sysctl.audit", dict(audit_vars(scene), nsguard_sysctl_fail_on="sometimes"),
                              workdir=scene["work"], json_output=False)
    assert bad_choice.rc != 0 and "nsguard_sysctl_fail_on" in bad_choice.stdout + bad_choice.stderr
