"""The real pieces together: the ``nsguard.sysctl.audit`` role (real facts, classifier, rules)
ends with the report action, over a fleet of localhost aliases.

- node1 gathers real facts while a real process whose command line is ``<script>...`` runs in
  its own namespaces and a real Podman container carries a label holding Markdown table syntax;
- node2/node3 are audited from distinct synthetic facts (``nsguard_sysctl_gather: false``), so
  the real rules run over three different hosts;
- ``broken`` fails before the audit, ``dead`` is unreachable (ssh to a closed loopback port).

Then the reports are rebuilt from the jsonfile fact cache (``nsguard.sysctl.report``), shown in
headless Chromium, and the real remediation playbook is run in ``--check``.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.ansible_run import run_playbook
from tests.integration.harness.fixtures import (  # noqa: F401 pylint: disable=unused-import
    busybox_rootfs, host_state, podman_runtime, runtime_workdir,
)
from tests.reports.helpers import chromium, errors_of, fleet_validator, sarif_validator
from tests.reports.synthetic import HOSTILE_CMDLINE, make_host
from tests.reports.test_report_e2e import _closed_port, hostile_process  # noqa: F401  (fixture)  # pylint: disable=unused-import
from tests.reports.test_report_html import _Dom
from tests.reports.test_report_outputs import _Cells, _render_markdown

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.runtime("podman")]

MD_LABEL = "| x | y |\n|---|---|\n| **owned** | [click](http://evil.example/) |"


@pytest.fixture(scope="module")
def labelled_container(podman_runtime):
    """A real Podman container (private storage, see tests/integration/harness) whose label is
    Markdown table syntax."""
    name = "nsg-report-md-%d" % os.getpid()
    cid = podman_runtime.cli("run", "-d", "--name", name, "--label", "team=" + MD_LABEL,
                             *podman_runtime.RUN_FLAGS, podman_runtime.IMAGE, "sleep", "3600").stdout.strip().splitlines()[-1]
    yield {"id": cid, "name": name}
    podman_runtime.cli("rm", "-f", "-t", "0", cid, check=False)


@pytest.fixture(scope="module")
def audited(tmp_path_factory, hostile_process, labelled_container):
    if os.geteuid() != 0:
        pytest.skip("needs root: namespaces and containers")
    tmp = tmp_path_factory.mktemp("audit-role")
    (tmp / "host_vars").mkdir()
    (tmp / "sysctl.d").mkdir()
    for i, host in enumerate(["node2", "node3"]):
        facts, dummy = make_host(host, 3 + i, seed=i)
        (tmp / "host_vars" / ("%s.json" % host)).write_text(json.dumps(
            {"synthetic_facts": facts, "nsguard_sysctl_gather": False}))
    local = {"ansible_connection": "local"}
    (tmp / "inventory.json").write_text(json.dumps({"fleet": {"hosts": {
        "node1": local, "node2": local, "node3": local, "broken": local,
        "dead": {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": _closed_port(),
                 "ansible_ssh_common_args": "-o ConnectTimeout=5 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"},
    }}}))
    audit_vars = {
        "nsguard_sysctl_fail_on": "never",
        "nsguard_sysctl_report_dir": str(tmp / "reports"),
        # persisted-drift rules read this empty directory, not the machine's /etc/sysctl.d
        "nsguard_sysctl_sysctl_d_dirs": [str(tmp / "sysctl.d")],
        "nsguard_sysctl_sysctl_conf": "",
        # a remediation that ran for real (it must not: --check) would write here
        "nsguard_sysctl_remediation_sysctl_d_dir": str(tmp / "remediation.d"),
    }
    book = tmp / "audit.yml"
    book.write_text(json.dumps([{
        "name": "audit a fleet", "hosts": "fleet", "gather_facts": False,
        # no task of ours connects before the role: its own first task meets the dead host
        "pre_tasks": [
            {"name": "Fail one host", "ansible.builtin.fail": {"msg": "broken on purpose"},
             "when": "inventory_hostname == 'broken'"},
            {"name": "Distinct facts", "ansible.builtin.set_fact": {"nsguard_sysctl": "{{ synthetic_facts }}",
                                                                    "cacheable": True},
             "when": "synthetic_facts is defined"},
        ],
        "roles": [dict({"role": "nsguard.sysctl.audit"}, **audit_vars)],
    }]))
    env = {"ANSIBLE_CACHE_PLUGIN": "ansible.builtin.jsonfile", "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(tmp / "cache"),
           "ANSIBLE_CACHE_PLUGIN_TIMEOUT": "3600"}
    inv = str(tmp / "inventory.json")
    proc = run_playbook(book, inventory=inv, env=env)
    return {"tmp": tmp, "inv": inv, "env": env, "proc": proc, "reports": tmp / "reports"}


def test_role_writes_reports_for_the_whole_fleet(audited):
    proc, reports = audited["proc"], audited["reports"]
    assert proc.returncode == 4, proc.stdout[-4000:] + proc.stderr[-2000:]
    doc = json.loads((reports / "fleet.json").read_text())
    assert not errors_of(fleet_validator(), doc)
    assert not errors_of(sarif_validator(), json.loads((reports / "fleet.sarif").read_text()))
    status = {h["name"]: h["status"] for h in doc["hosts"]}
    assert status == {"node1": "ok", "node2": "ok", "node3": "ok", "broken": "failed", "dead": "unreachable"}
    # the unreachable host carries Ansible's own error text (the role's first task registered it),
    # the same words ansible-playbook printed, not a generic "unreachable during the play"
    dead = {h["name"]: h for h in doc["hosts"]}["dead"]["message"]
    assert "Failed to connect to the host via ssh" in dead and "Connection refused" in dead, dead
    assert "fatal: [dead]: UNREACHABLE!" in proc.stdout and "Connection refused" in proc.stdout
    md = (reports / "fleet.md").read_text()
    assert "Connection refused" in md
    # every finding the real rules produced is in the report: the role's own per-host line says how many
    said = dict(re.findall(r"nsguard\.sysctl (node\d): \d+ namespace sets, (\d+) findings", proc.stdout))
    assert set(said) == {"node1", "node2", "node3"}
    assert {h["name"]: h["findings"]["total"] for h in doc["hosts"] if h["status"] == "ok"} == {
        k: int(v) for k, v in said.items()}
    assert doc["summary"]["findings"]["total"] > 0
    assert re.search(r"^nsguard\.sysctl: 5 hosts \(3 ok, 1 unreachable, 1 failed\)", proc.stdout, re.M)


def test_hostile_names_from_real_containers(audited, labelled_container, hostile_process):
    reports = audited["reports"]
    doc = json.loads((reports / "fleet.json").read_text())
    node1 = [c for c in doc["containers"] if c["host"] == "node1"]
    podman = [c for c in node1 if c["id"] == labelled_container["id"]]
    assert len(podman) == 1 and podman[0]["labels"].get("team") == MD_LABEL, node1
    assert any((c["cmdline"] or "").startswith(HOSTILE_CMDLINE) for c in node1)
    # Markdown: the label is one cell's text, the table keeps its shape, nothing became markup
    html = _render_markdown((reports / "fleet.md").read_text())
    assert "<a " not in html and "<strong>" not in html and "<script" not in html
    cells = _Cells()
    cells.feed(html)
    label_cell = [c for row in cells.rows for c in row if "team=" in c and "owned" in c]
    assert label_cell and MD_LABEL.replace("\n", " ") in label_cell[0]
    # HTML in the browser, filtered through the URL (other tests on this machine may run many
    # namespace sets at the same time, so node1 can have more than a page of them)
    rows = _browser_rows(reports / "fleet.html", "host=node1 container=%s" % labelled_container["name"])
    assert len(rows) == 1 and "team=" + MD_LABEL in rows[0][4]  # textContent keeps the newlines as text
    rows = _browser_rows(reports / "fleet.html", "host=node1 cmdline:document.title")
    assert any(r[5].startswith(HOSTILE_CMDLINE) for r in rows) and all(HOSTILE_CMDLINE in r[5] for r in rows)


def _browser_rows(page: Path, query: str) -> list:
    proc = chromium("file://%s#containers.q=%s" % (page, quote(query)), "--dump-dom", "--virtual-time-budget=5000")
    dom = _Dom()
    dom.feed(proc.stdout)
    assert dom.body.get("data-ready") == "1" and dom.tags["script"] == 2, proc.stderr[-2000:]
    return dom.tables["tbl-containers"]["rows"]


def test_report_playbook_rebuilds_from_the_cache(audited):
    out = audited["tmp"] / "from-cache"
    # findings are recomputed from the cached facts (never read from the cache): with the lint
    # options the audit used, they are the audit's findings
    lint_options = {"remediation": {"sysctl_d_dir": str(audited["tmp"] / "remediation.d")}}
    proc = run_playbook("nsguard.sysctl.report", "-e", "nsguard_sysctl_report_dir=%s" % out,
                        "-e", json.dumps({"nsguard_sysctl_report_lint": lint_options}),
                        inventory=audited["inv"], env=audited["env"])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    first = json.loads((audited["reports"] / "fleet.json").read_text())
    again = json.loads((out / "fleet.json").read_text())
    assert again["source"] == "cache" and not errors_of(fleet_validator(), again)
    assert again["findings"] == first["findings"]
    assert {h["name"]: h["status"] for h in again["hosts"]}["dead"] == "unreachable"


def test_real_remediation_is_safe_in_check_mode(audited):
    path = audited["reports"] / "remediation.yml"
    run_playbook(path, "--syntax-check", inventory=audited["inv"], check=True)
    text = path.read_text()
    files = sorted(set(re.findall(r"sysctl_file: (\S+)", text)))
    before = {f: Path(f).read_bytes() if Path(f).exists() else None for f in files}
    proc = run_playbook(path, "--check", "--diff", "--limit", "node1,node2,node3", inventory=audited["inv"],
                        env=audited["env"])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert {f: Path(f).read_bytes() if Path(f).exists() else None for f in files} == before
    assert not (audited["tmp"] / "remediation.d").exists() or not os.listdir(audited["tmp"] / "remediation.d")
