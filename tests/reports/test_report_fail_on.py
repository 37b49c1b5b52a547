"""The audit role fails a host on its findings in the lint task itself, and the report, which runs
once in the role's ``always`` section, still covers every host (issue 15 item 2). Real
``ansible-playbook`` runs of ``nsguard.sysctl.audit`` over localhost aliases:

- ``err1``, ``err2``: synthetic facts with container sets (at least one error each) and
  ``warn0``: synthetic facts without sets; all ``nsguard_sysctl_gather: false``, so the real
  rules run over them without a gather;
- ``bad``: facts that fail the schema (the lint task fails it with the reason);
- ``nopy``: gathers for real through an interpreter that does not exist (fails in the block,
  after the reach task);
- ``broken``: fails before the role; ``dead``: unreachable (ssh to a closed loopback port).

The same fleet at ``fail_on: never`` gives the findings the report must show at ``fail_on: error``,
where the hosts with errors fail (rc 2) and the report still lists them, ok, with those findings.
Check mode, the tags and a lint option that differs between hosts are run too.
"""
from __future__ import annotations

import json
import re

import pytest

from tests.ansible_run import run_playbook
from tests.reports.synthetic import make_host
from tests.reports.test_report_e2e import _closed_port

pytestmark = [pytest.mark.slow]

SYNTHETIC = {"err1": 3, "err2": 2, "warn0": 0}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fail-on")
    (tmp / "host_vars").mkdir()
    for i, (host, sets) in enumerate(SYNTHETIC.items()):
        facts, dummy = make_host(host, sets, seed=i)
        (tmp / "host_vars" / ("%s.json" % host)).write_text(json.dumps(
            {"synthetic_facts": facts, "nsguard_sysctl_gather": False}))
    bad, dummy = make_host("bad", 1)
    bad["namespace_sets"] = "not a list"
    (tmp / "host_vars" / "bad.json").write_text(json.dumps({"synthetic_facts": bad, "nsguard_sysctl_gather": False}))
    local = {"ansible_connection": "local"}
    (tmp / "inventory.json").write_text(json.dumps({"fleet": {"hosts": {
        "bad": local, "broken": local, "err1": local, "err2": local, "warn0": local,
        "nopy": dict(local, ansible_python_interpreter="/nonexistent/python3"),
        "dead": {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": _closed_port(),
                 "ansible_ssh_common_args": "-o ConnectTimeout=5 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"},
    }}}))
    book = tmp / "audit.yml"
    book.write_text(json.dumps([{
        "name": "audit a fleet", "hosts": "fleet", "gather_facts": False,
        "pre_tasks": [
            {"name": "Fail one host", "ansible.builtin.fail": {"msg": "broken on purpose"},
             "when": "inventory_hostname == 'broken'", "tags": ["always"]},
            {"name": "Distinct facts", "ansible.builtin.set_fact": {"nsguard_sysctl": "{{ synthetic_facts }}",
                                                                    "cacheable": True},
             "when": "synthetic_facts is defined", "tags": ["always"]},
        ],
        "roles": [{"role": "nsguard.sysctl.audit"}],
    }]))

    def audit(name, *args, **audit_vars):
        out = tmp / name
        extra = dict({"nsguard_sysctl_report_dir": str(out), "nsguard_sysctl_fail_on": "error",
                      "nsguard_sysctl_sysctl_d_dirs": [], "nsguard_sysctl_sysctl_conf": ""}, **audit_vars)
        proc = run_playbook(book, "-e", json.dumps(extra), *args, inventory=str(tmp / "inventory.json"))
        doc = json.loads((out / "fleet.json").read_text()) if (out / "fleet.json").exists() else None
        return proc, doc

    return audit


def status_of(doc):
    return {h["name"]: h["status"] for h in doc["hosts"]}


def findings_by_host(doc):
    out = {}
    for finding in doc["findings"]:
        out.setdefault(finding["host"], []).append(finding)
    return out


def errors_of_host(doc):
    return {h["name"]: h["findings"]["error"] for h in doc["hosts"] if h["status"] == "ok"}


EXPECTED_STATUS = {"bad": "failed", "broken": "failed", "dead": "unreachable", "nopy": "failed",
                   "err1": "ok", "err2": "ok", "warn0": "ok"}


@pytest.fixture(scope="module")
def never(fleet):
    return fleet("never", nsguard_sysctl_fail_on="never")


@pytest.fixture(scope="module")
def at_error(fleet):
    return fleet("error")


def check_fail_on_error(proc, doc, never_doc):
    assert proc.returncode == 4, proc.stdout[-4000:] + proc.stderr[-2000:]   # 4: a host was unreachable
    assert status_of(doc) == EXPECTED_STATUS
    # the hosts that failed on their findings are in the report with the findings fail_on=never gave
    assert findings_by_host(doc) == findings_by_host(never_doc)
    errors = errors_of_host(never_doc)
    failing = sorted(h for h, n in errors.items() if n)
    assert failing == ["err1", "err2"], errors
    for host in failing:
        counts = {h["name"]: h["findings"] for h in never_doc["hosts"]}[host]
        message = "%s has %d error and %d warning findings (nsguard_sysctl_fail_on=error)" % (
            host, counts["error"], counts["warning"])
        # the failure is the lint task's: its message, and no findings dumped with it
        fatal = re.search(r"^fatal: \[%s\]: FAILED! => (.*)$" % host, proc.stdout, re.M)
        assert fatal and json.loads(fatal.group(1))["msg"] == message, proc.stdout[-4000:]
        assert '"findings": [' not in fatal.group(1)
        assert re.search(r"^nsguard\.sysctl %s: \d+ namespace sets, %d findings" % (host, counts["total"]),
                         proc.stdout, re.M)
    assert "fatal: [warn0]" not in proc.stdout
    # every host that reached the role is in the recap, and the report counted them all
    assert re.search(r"^nsguard\.sysctl: 7 hosts \(3 ok, 1 unreachable, 3 failed\)", proc.stdout, re.M)


def test_hosts_fail_on_their_findings_and_the_report_lists_every_host(never, at_error):
    proc, doc = never
    assert proc.returncode == 4, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert status_of(doc) == EXPECTED_STATUS
    assert "has 3 error" not in proc.stdout and "nsguard_sysctl_fail_on=never" not in proc.stdout
    hosts = {h["name"]: h for h in doc["hosts"]}
    assert "schemas/sysctl-facts.schema.json" in hosts["bad"]["message"]
    assert hosts["nopy"]["message"] == "failed during the audit; see its task output"
    assert hosts["broken"]["message"] == "failed earlier in the play; see its task output"
    assert "Connection refused" in hosts["dead"]["message"]
    check_fail_on_error(*at_error, doc)


def test_check_mode_fails_and_reports_the_same(fleet, never):
    proc, doc = fleet("check", "--check")
    check_fail_on_error(proc, doc, never[1])


def test_tags_choose_the_steps(fleet, never):
    # lint alone: the hosts still fail on their findings; no report is written
    proc, doc = fleet("lint-only", "--tags", "lint")
    assert doc is None and proc.returncode == 2
    assert re.search(r"^fatal: \[err1\]: FAILED! => .*nsguard_sysctl_fail_on=error", proc.stdout, re.M)
    # the report alone lints every host itself, with the role's lint options: the same findings
    proc, doc = fleet("report-only", "--tags", "report")
    assert "fatal: [err1]" not in proc.stdout and doc is not None
    assert findings_by_host(doc) == findings_by_host(never[1])


def test_lint_options_that_differ_between_hosts_are_named(fleet, never):
    """A host whose lint options differ from those the report task was given (here: a rule
    skipped for err2 only, one that finds nothing there) is linted again by the report with the
    report's options, and the report says so."""
    proc, doc = fleet("per-host", nsguard_sysctl_skip_rules="{{ ['NSG008'] if inventory_hostname == 'err2' else [] }}")
    assert proc.returncode == 4 and status_of(doc) == EXPECTED_STATUS
    said = " ".join((proc.stdout + proc.stderr).split())   # warnings go to stderr, wrapped
    assert "sysctl_report: err2: linted with the report's lint options, which are not those" in said, said[-3000:]
    assert "sysctl_report: err1:" not in said
