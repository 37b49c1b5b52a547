"""A fleet through real ansible-playbook runs, end to end.

Inventory: localhost aliases with distinct facts (node1 gathers real facts with
nsguard.sysctl.sysctl_facts while a real process whose command line is ``<script>...``
runs in its own namespaces; node2/node3 carry distinct synthetic facts), a host that fails
(``broken``) and one that is unreachable (ssh to a closed loopback port). The audit play caches
facts and findings in a jsonfile fact cache; then the ``nsguard.sysctl.report`` playbook builds
the same reports from that cache without gathering.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ansible_collections.nsguard.sysctl.plugins.plugin_utils import lint
from tests.ansible_run import run_playbook
from tests.reports.helpers import errors_of, fleet_validator, sarif_validator
from tests.reports.synthetic import HOSTILE_CMDLINE, make_host

pytestmark = pytest.mark.slow

AUDIT = [
    {"name": "Reach the host", "ansible.builtin.ping": {}},
    {"name": "Fail one host on purpose", "ansible.builtin.fail": {"msg": "broken on purpose"},
     "when": "inventory_hostname == 'broken'"},
    {"name": "Real facts", "nsguard.sysctl.sysctl_facts": {}, "when": "inventory_hostname == 'node1'"},
    {"name": "Distinct synthetic facts", "ansible.builtin.set_fact": {
        "nsguard_sysctl": "{{ synthetic_facts }}", "cacheable": True}, "when": "inventory_hostname != 'node1'"},
    # findings cached the way an older role did (or a target forged): the report must never read them
    {"name": "Stale findings in the cache", "ansible.builtin.set_fact": {
        "nsguard_sysctl_findings": "{{ synthetic_findings }}", "cacheable": True}},
    {"name": "Lint", "nsguard.sysctl.sysctl_lint": {}, "register": "nsguard_sysctl_lint_result"},
    {"name": "Fleet reports", "nsguard.sysctl.sysctl_report": {"dest": "{{ report_dir }}"}, "run_once": True},
]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def hostile_process():
    """A real process in its own net/ipc/uts/pid namespaces whose argv is an HTML script tag."""
    proc = subprocess.Popen(["unshare", "-n", "-i", "-u", "-p", "-f", "--kill-child", "bash", "-c",
                             'exec -a "$0" sleep 600', HOSTILE_CMDLINE], start_new_session=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if Path("/proc/%d/task/%d/children" % (proc.pid, proc.pid)).read_text().split():
                break
        except OSError:
            pass
        time.sleep(0.05)
    yield proc
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def fleet_run(tmp_path_factory, hostile_process):
    tmp = tmp_path_factory.mktemp("e2e")
    (tmp / "host_vars").mkdir()
    synthetic = {}
    for i, host in enumerate(["node1", "node2", "node3", "broken", "dead"]):
        facts, findings = make_host(host, 2 + i, seed=i)
        synthetic[host] = findings
        (tmp / "host_vars" / ("%s.json" % host)).write_text(json.dumps({"synthetic_facts": facts, "synthetic_findings": findings}))
    local = {"ansible_connection": "local"}
    inventory = {"fleet": {"hosts": {
        "node1": local, "node2": local, "node3": local, "broken": local,
        "dead": {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": _closed_port(),
                 "ansible_ssh_common_args": "-o ConnectTimeout=5 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"},
    }}}
    (tmp / "inventory.json").write_text(json.dumps(inventory))
    # the inventory file must sit next to host_vars/ for Ansible to read them
    inv = str(tmp / "inventory.json")
    book = tmp / "audit.yml"
    book.write_text(json.dumps([{"name": "audit", "hosts": "fleet", "gather_facts": False, "tasks": AUDIT}]))
    cache_env = {"ANSIBLE_CACHE_PLUGIN": "ansible.builtin.jsonfile",
                 "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(tmp / "cache"), "ANSIBLE_CACHE_PLUGIN_TIMEOUT": "3600"}
    out = tmp / "out"
    proc = run_playbook(book, "-e", "report_dir=%s" % out, inventory=inv, env=cache_env)
    return {"tmp": tmp, "inv": inv, "book": book, "out": out, "proc": proc, "env": cache_env, "synthetic": synthetic}


def test_audit_play_writes_every_report(fleet_run):
    proc, out = fleet_run["proc"], fleet_run["out"]
    # rc 4: Ansible's own status for an unreachable host (the report itself did not fail)
    assert proc.returncode == 4, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "fatal: [dead]: UNREACHABLE!" in proc.stdout and "fatal: [broken]: FAILED!" in proc.stdout
    doc = json.loads((out / "fleet.json").read_text())
    assert not errors_of(fleet_validator(), doc)
    status = {h["name"]: h["status"] for h in doc["hosts"]}
    assert status == {"node1": "ok", "node2": "ok", "node3": "ok", "broken": "failed", "dead": "unreachable"}
    # the summary line with counts per severity is printed
    f = doc["summary"]["findings"]
    line = "nsguard.sysctl: 5 hosts (3 ok, 1 unreachable, 1 failed)"
    assert line in proc.stdout and "%d error, %d warning, %d info" % (f["error"], f["warning"], f["info"]) in proc.stdout
    # findings of the ok hosts only, as the engine computes them from each host's facts on the
    # controller; never the findings set_fact put in the cache
    config = lint.load_config({})
    per_host = {h["name"]: h["findings"]["total"] for h in doc["hosts"]}
    for host in ("node2", "node3"):
        facts = json.loads((fleet_run["tmp"] / "host_vars" / ("%s.json" % host)).read_text())["synthetic_facts"]
        assert per_host[host] == len(lint.lint_host(facts, host, config)["findings"]) > 0
    assert per_host["broken"] == per_host["dead"] == 0
    assert "knowledge: synthetic" not in json.dumps(doc["findings"])
    # distinct facts per host: kernels differ, node1's are this machine's
    kernels = {h["name"]: h["kernel"] for h in doc["hosts"] if h["status"] == "ok"}
    assert kernels["node1"] == os.uname().release and len(set(kernels.values())) == 3
    # the other outputs, each checked by its consumer
    assert not errors_of(sarif_validator(), json.loads((out / "fleet.sarif").read_text()))
    junit = ET.parse(out / "fleet.junit.xml").getroot()
    assert {s.get("name") for s in junit.findall("testsuite")} == set(status)
    assert len(junit.findall("testsuite[@name='dead']/testcase/error")) == len(doc["rules"])
    md = (out / "fleet.md").read_text()
    assert "| dead | unreachable |" in md and "| broken | failed |" in md
    assert "dead: unreachable" in (out / "remediation.yml").read_text()
    run_playbook(out / "remediation.yml", "--syntax-check", inventory=fleet_run["inv"], check=True)


def test_real_hostile_process_is_text_everywhere(fleet_run, hostile_process):
    out = fleet_run["out"]
    doc = json.loads((out / "fleet.json").read_text())
    cmdlines = [c["cmdline"] for c in doc["containers"] if c["host"] == "node1"]
    assert any(c and c.startswith(HOSTILE_CMDLINE) for c in cmdlines), cmdlines   # gathered for real
    html = (out / "fleet.html").read_text()
    md = (out / "fleet.md").read_text()
    assert "<script>document.title" not in html and "<script>document.title" not in md
    assert "&lt;script&gt;document.title" in md


def test_report_playbook_from_the_fact_cache(fleet_run):
    """nsguard.sysctl.report rebuilds the reports from the jsonfile cache, without gathering."""
    out2 = fleet_run["tmp"] / "out-cache"
    proc = run_playbook("nsguard.sysctl.report", "-e", "nsguard_sysctl_report_dir=%s" % out2,
                        inventory=fleet_run["inv"], env=fleet_run["env"])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "UNREACHABLE" not in proc.stdout and "Gathering Facts" not in proc.stdout
    first = json.loads((fleet_run["out"] / "fleet.json").read_text())
    again = json.loads((out2 / "fleet.json").read_text())
    assert not errors_of(fleet_validator(), again)
    assert again["source"] == "cache"
    status = {h["name"]: h["status"] for h in again["hosts"]}
    # broken failed before caching anything and dead was never reached: no cached facts
    assert status == {"node1": "ok", "node2": "ok", "node3": "ok", "broken": "unreachable", "dead": "unreachable"}

    def ok(d):
        return {h["name"]: (h["findings"], h["containers"], h["kernel"]) for h in d["hosts"] if h["status"] == "ok"}
    assert ok(again) == ok(first)
    assert again["findings"] == first["findings"]
    assert set(os.listdir(out2)) == {"fleet.json", "fleet.md", "fleet.html", "fleet.sarif", "fleet.junit.xml", "remediation.yml"}


def test_report_playbook_lint_workers_give_the_same_report(fleet_run):
    """With forked lint workers (nsguard_sysctl_report_jobs) the jsonfile cache is read one host at
    a time in the workers, and the report is the in-play one."""
    out = fleet_run["tmp"] / "out-jobs"
    proc = run_playbook("nsguard.sysctl.report", "-e", "nsguard_sysctl_report_dir=%s" % out,
                        "-e", "nsguard_sysctl_report_jobs=2", "-v", inventory=fleet_run["inv"], env=fleet_run["env"])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "reading hostvars" not in proc.stdout
    first = json.loads((fleet_run["out"] / "fleet.json").read_text())
    again = json.loads((out / "fleet.json").read_text())
    assert not errors_of(fleet_validator(), again)
    assert {h["name"]: h["status"] for h in again["hosts"]} == {
        "node1": "ok", "node2": "ok", "node3": "ok", "broken": "unreachable", "dead": "unreachable"}
    assert again["findings"] == first["findings"]
    assert again["containers"] == first["containers"]


def test_fail_on_sets_the_exit_status(fleet_run):
    out3 = fleet_run["tmp"] / "out-fail"
    proc = run_playbook(fleet_run["book"], "--limit", "node2", "-e", "report_dir=%s" % out3,
                        "-e", "nsguard_sysctl_fail_on=error", inventory=fleet_run["inv"])
    errors = json.loads((out3 / "fleet.json").read_text())["summary"]["findings"]["error"]
    assert errors > 0
    assert proc.returncode == 2 and "fail_on=error" in proc.stdout, proc.stdout[-3000:]
    proc = run_playbook(fleet_run["book"], "--limit", "node2", "-e", "report_dir=%s" % out3,
                        "-e", "nsguard_sysctl_fail_on=never", inventory=fleet_run["inv"])
    assert proc.returncode == 0, proc.stdout[-3000:]


@pytest.fixture
def redis_server(tmp_path):
    """A private redis-server on a loopback port (community.general.redis fact cache)."""
    pytest.importorskip("redis", reason="the community.general.redis cache plugin needs the Python redis package")
    binary = shutil.which("redis-server")
    if not binary:
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    port = _closed_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    yield "127.0.0.1:%d:0" % port
    proc.terminate()
    proc.wait(timeout=10)


def test_report_playbook_from_a_redis_fact_cache(fleet_run, redis_server):
    env = {"ANSIBLE_CACHE_PLUGIN": "community.general.redis", "ANSIBLE_CACHE_PLUGIN_CONNECTION": redis_server,
           "ANSIBLE_CACHE_PLUGIN_TIMEOUT": "3600"}
    out = fleet_run["tmp"] / "out-redis-audit"
    proc = run_playbook(fleet_run["book"], "-e", "report_dir=%s" % out, inventory=fleet_run["inv"], env=env)
    assert proc.returncode == 4, proc.stdout[-3000:] + proc.stderr[-2000:]
    again = fleet_run["tmp"] / "out-redis"
    proc = run_playbook("nsguard.sysctl.report", "-e", "nsguard_sysctl_report_dir=%s" % again, "-v",
                        inventory=fleet_run["inv"], env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    # not a file cache: read through hostvars, and said so
    assert "community.general.redis is not a file cache: reading hostvars" in proc.stdout, proc.stdout[-3000:]
    first = json.loads((out / "fleet.json").read_text())
    cached = json.loads((again / "fleet.json").read_text())
    assert cached["source"] == "cache" and not errors_of(fleet_validator(), cached)
    assert {h["name"]: h["status"] for h in cached["hosts"]} == {
        "node1": "ok", "node2": "ok", "node3": "ok", "broken": "unreachable", "dead": "unreachable"}
    assert cached["findings"] == first["findings"]


def test_action_reports_bad_input_and_keeps_going(tmp_path):
    """An unknown host is listed as failed; an unwritable directory fails the task with a message
    that names it; a bad fail_on is refused by name; the play goes on."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the report directory should be")
    book = tmp_path / "bad.yml"
    book.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"nsguard.sysctl.sysctl_report": {"dest": str(blocker / "reports"), "formats": ["json"]},
         "register": "unwritable", "ignore_errors": True},
        {"nsguard.sysctl.sysctl_report": {"dest": str(tmp_path / "r"), "fail_on": "sometimes"},
         "register": "bad_threshold", "ignore_errors": True},
        {"nsguard.sysctl.sysctl_report": {"dest": str(tmp_path / "r"), "hosts": ["localhost", "ghost"],
                                          "formats": ["json", "md"]}, "register": "unknown"},
        {"ansible.builtin.copy": {"dest": str(tmp_path / "results.json"),
                                  "content": "{{ {'unwritable': unwritable, 'bad_threshold': bad_threshold, "
                                             "'unknown': unknown} | to_json }}"}},
    ]}]))
    run_playbook(book, check=True)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["unwritable"]["failed"] and str(blocker) in results["unwritable"]["msg"]
    assert results["bad_threshold"]["failed"] and "fail_on" in results["bad_threshold"]["msg"]
    assert results["unknown"]["per_host"]["ghost"]["status"] == "failed"
    doc = json.loads((tmp_path / "r" / "fleet.json").read_text())
    ghost = next(h for h in doc["hosts"] if h["name"] == "ghost")
    assert ghost["message"] == "not in the inventory"
    assert "ghost" in (tmp_path / "r" / "fleet.md").read_text()


def test_report_playbook_reads_a_cache_of_an_earlier_facts_version(tmp_path, monkeypatch):
    """A jsonfile cache holding a real facts document of schema_version 1 (written before
    version 2), one of the current version and a version 1 document with a malformed key entry:
    the report playbook reports the first two ok with their findings and fails the third alone,
    naming the path."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("ANSIBLE_CACHE_PLUGIN_CONNECTION", str(cache))
    from ansible.plugins.loader import cache_loader
    plugin = cache_loader.get("jsonfile", _uri=str(cache), _timeout=3600)
    v1 = json.loads((Path(__file__).resolve().parents[1] / "unit" / "fixtures" / "facts" / "v1-full-view.json").read_text())
    broken = json.loads(json.dumps(v1))
    broken["host"]["keys"]["vm.swappiness"] = {"value": 60, "mode": "0644"}
    current, dummy = make_host("new", 2)
    for host, facts in (("old", v1), ("new", current), ("broken", broken)):
        plugin.set(host, {"nsguard_sysctl": facts})
    env = {"ANSIBLE_CACHE_PLUGIN": "ansible.builtin.jsonfile", "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(cache),
           "ANSIBLE_CACHE_PLUGIN_TIMEOUT": "3600"}
    out = tmp_path / "out"
    proc = run_playbook("nsguard.sysctl.report", "-e", "nsguard_sysctl_report_dir=%s" % out,
                        inventory="old,new,broken,", env=env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    doc = json.loads((out / "fleet.json").read_text())
    assert not errors_of(fleet_validator(), doc) and doc["source"] == "cache"
    hosts = {h["name"]: h for h in doc["hosts"]}
    config = lint.load_config({})
    assert hosts["old"]["status"] == "ok"
    assert hosts["old"]["findings"]["total"] == len(lint.lint_host(v1, "old", config)["findings"]) > 0
    assert hosts["new"]["status"] == "ok" and hosts["new"]["findings"]["total"] > 0
    assert hosts["broken"]["status"] == "failed"
    assert '$.host.keys["vm.swappiness"]' in hosts["broken"]["message"] and "schema_version 1" in hosts["broken"]["message"]
