"""remediation.yml: structure, tags, guards, and real ansible-playbook --syntax-check / --check.

Check mode must change nothing: the tests snapshot the host's sysctls and /etc/sysctl.d around
every run and restore them in teardown should anything have been written.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml

from ansible_collections.nsguard.sysctl.plugins.plugin_utils import report
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.render_remediation import HOST_GUARD
from tests.ansible_run import run_playbook
from tests.reports.synthetic import host_sysctl_task, make_fleet, make_host

SYSCTL_D = Path("/etc/sysctl.d")
WATCHED = ["vm.max_map_count", "net.core.somaxconn"]


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_constructor("!unsafe", lambda loader, node: ("UNSAFE", loader.construct_scalar(node)))


def _load(path: Path):
    return yaml.load(path.read_text(), Loader=_Loader)


def _fleet():
    fleet = make_fleet(2, 4, unreachable=1, failed=1)
    names = list(fleet)
    # the same host task asked for by three findings of one host: written once
    h0 = names[0]
    extra = [dict(f, set_id="net:%d/x" % i) for i, f in enumerate(fleet[h0]["findings"]) if f["rule"] == "NSG001"]
    task = host_sysctl_task("NSG001", "vm.max_map_count", "262144")
    for i in range(3):
        extra.append({"rule": "NSG001", "rule_name": "global-key-requested", "severity": "error", "host": h0,
                      "set_id": "net:99%d/y" % i, "container": {"name": "es%d" % i}, "key": "vm.max_map_count",
                      "message": "m", "remediation": {"where": "host", "tasks": [dict(task)]}})
    # a task name that quotes a tenant string with Jinja in it, and one refused host task
    extra.append({"rule": "NSG010", "rule_name": "x", "severity": "warning", "host": h0, "set_id": None,
                  "container": None, "key": "kernel.msgmax", "message": "m",
                  "remediation": {"where": "host", "tasks": [
                      {"name": "NSG010 for {{ lookup('pipe', 'touch /tmp/nsg-pwned') }}",
                       "ansible.builtin.debug": {"msg": "{{ lookup('pipe', 'id') }}"}},
                      {"name": "sneaky", "ansible.builtin.debug": {"msg": "x"}, "delegate_to": "container1"}]}})
    fleet[h0] = dict(fleet[h0], findings=fleet[h0]["findings"] + extra)
    # a host whose name is a host pattern
    facts, findings = make_host("db*prod", 1)
    fleet["db*prod"] = {"status": "ok", "facts": facts, "findings": findings}
    facts, findings = make_host("db1prod", 1)
    fleet["db1prod"] = {"status": "ok", "facts": facts, "findings": findings}
    return fleet


@pytest.fixture(scope="module")
def remediation(tmp_path_factory):
    dest = tmp_path_factory.mktemp("remediation")
    model = report.build_fleet(_fleet())
    written, errors = report.write_reports(model, str(dest), ["remediation"])
    assert not errors
    return model, Path(written["remediation"])


def _tasks(play):
    for top in play["tasks"]:
        for task in top.get("block", [top]):
            yield top, task


def test_structure_tags_and_guards(remediation):
    model, path = remediation
    plays = _load(path)
    text = path.read_text()
    hosts_with_tasks = {f["host"] for f in model["findings"]
                        if (f.get("remediation") or {}).get("where") in ("host", "container-spec")}
    assert len(plays) == len(hosts_with_tasks)
    for play in plays:
        setup = next(t for t in play["tasks"] if "ansible.builtin.setup" in t)
        assert setup["ansible.builtin.setup"]["gather_subset"] == ["!all", "!min", "virtual"]
        for top, task in _tasks(play):
            if "ansible.builtin.setup" in task or "ansible.builtin.meta" in task:
                continue
            rule_tags = [t for t in task["tags"] if re.fullmatch(r"NSG\d+", t)]
            assert rule_tags, task                                    # every task tagged with its rule id
            module = next(k for k in task if "." in k)
            if module == "ansible.posix.sysctl":
                assert HOST_GUARD in (top["when"] if isinstance(top["when"], list) else [top["when"]])
                assert not {"delegate_to", "connection"} & set(task)  # host-side never reaches elsewhere
            if "container-spec" in task["tags"]:
                assert "never" in task["tags"]                        # opt-in only
    # deduplicated: one vm.max_map_count task on the first host, despite several findings
    first = next(p for p in plays if p["hosts"] == "node0000.example")
    names = [t["name"] for _, t in _tasks(first) if t.get("ansible.posix.sysctl", {}).get("name") == "vm.max_map_count"]
    assert len(names) == 1
    # Jinja from a tenant-controlled string is written !unsafe; the refused task is reported
    unsafe = [t["name"] for _, t in _tasks(first) if isinstance(t["name"], tuple)]
    assert unsafe == [("UNSAFE", "NSG010 for {{ lookup('pipe', 'touch /tmp/nsg-pwned') }}")]
    assert "# skipped:" in text and "sneaky" in text and "delegate_to" in text
    # not audited hosts are named in the header
    assert "gone00.example: unreachable" in text and "broken00.example: failed" in text
    # a host name that is a pattern is not used as one
    star = next(p for p in plays if p["name"].endswith("db*prod"))
    assert star["hosts"] == "all" and star["vars"]["nsguard_sysctl_remediation_target"] == "db*prod"


def _snapshot():
    values = {k: Path("/proc/sys/" + k.replace(".", "/")).read_text() for k in WATCHED}
    files = sorted(os.listdir(SYSCTL_D)) if SYSCTL_D.is_dir() else []
    return values, files


@pytest.fixture
def host_state():
    """Snapshot the host's watched sysctls and sysctl.d; restore them if a run changed them."""
    before = _snapshot()
    yield before
    values, files = before
    for key, value in values.items():
        path = Path("/proc/sys/" + key.replace(".", "/"))
        if path.read_text() != value:
            path.write_text(value)
    for name in set(os.listdir(SYSCTL_D)) - set(files) if SYSCTL_D.is_dir() else ():
        if name.startswith("90-nsguard-"):
            (SYSCTL_D / name).unlink()


def _inventory(tmp_path: Path, model) -> str:
    hosts = {h["name"]: {"ansible_connection": "local"} for h in model["hosts"] if h["status"] == "ok"}
    path = tmp_path / "inventory.yml"
    path.write_text(json.dumps({"all": {"hosts": hosts}}))
    return str(path)


def _virtualization():
    from tests.ansible_run import ansible_env
    import subprocess
    import sys
    out = subprocess.run([str(Path(sys.executable).parent / "ansible"), "-i", "localhost,", "-c", "local", "localhost",
                          "-m", "setup", "-a", "gather_subset=!all,!min,virtual"],
                         env=ansible_env(), capture_output=True, text=True, timeout=120, check=True).stdout
    facts = json.loads(out[out.index("{"):])["ansible_facts"]
    return facts.get("ansible_virtualization_role"), facts.get("ansible_virtualization_type")


@pytest.mark.slow
def test_syntax_check_and_check_mode_change_nothing(remediation, tmp_path, host_state):
    model, path = remediation
    inventory = _inventory(tmp_path, model)
    run_playbook(path, "--syntax-check", inventory=inventory, check=True)
    proc = run_playbook(path, "--check", "--diff", inventory=inventory, check=True)
    out = proc.stdout
    assert _snapshot() == host_state
    assert not Path("/tmp/nsg-pwned").exists()                     # the !unsafe name was never templated
    assert "lookup('pipe', 'touch /tmp/nsg-pwned')" in out
    role, vtype = _virtualization()
    in_container = role == "guest" and vtype in ("docker", "podman", "lxc", "openvz", "container", "containerd",
                                                  "systemd-nspawn", "wsl")
    recap = dict(re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", out, flags=re.M))
    if in_container:
        # this machine looks like a container to Ansible: host-side tasks must not run at all
        assert re.search(r"TASK \[NSG001 vm\.max_map_count=262144 on the host\][^\n]*\n(skipping: \[[^\]]+\]\n)+", out)
        assert set(recap.values()) == {"0"}
    else:
        assert any(int(v) for v in recap.values())                  # would change, in check mode only
    # the pattern-named host's play ran for it alone, not for db1prod
    play = out.split("PLAY [nsguard.sysctl remediation for db*prod]")[1].split("PLAY [")[0]
    assert "ok: [db*prod]" in play and "ok: [db1prod]" not in play and "changed: [db1prod]" not in play
    # container-spec tasks only when asked for
    assert "NSG004 set" not in out
    asked = run_playbook(path, "--check", "--tags", "NSG004", inventory=inventory, check=True).stdout
    assert "TASK [NSG004 set" in asked
    # with --tags the guard's facts are still gathered (tagged always), so the guard still holds
    one_rule = run_playbook(path, "--check", "--tags", "NSG001", inventory=inventory, check=True).stdout
    assert "TASK [Virtualization facts" in one_rule and "TASK [NSG002" not in one_rule
    if in_container:
        assert "changed=1" not in one_rule and re.search(r"TASK \[NSG001[^\n]*\n(skipping: [^\n]+\n)+", one_rule)
    assert _snapshot() == host_state


@pytest.mark.slow
def test_host_tasks_are_check_mode_safe_without_the_guard(remediation, tmp_path, host_state):
    """Run the host-side tasks themselves in --check where the guard would skip them: the
    modules must report the change and make none."""
    model, path = remediation
    plays = _load(path)
    first = next(p for p in plays if p["hosts"] == "node0000.example")
    tasks = [t for _, t in _tasks(first) if "ansible.posix.sysctl" in t]
    assert tasks
    for t in tasks:
        t.pop("when", None)
    book = tmp_path / "bare.yml"
    book.write_text(json.dumps([{"name": "bare", "hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    proc = run_playbook(book, "--check", "--diff", check=True)
    changed = int(re.search(r"changed=(\d+)", proc.stdout).group(1))
    want = sum(1 for t in tasks if host_state[0].get(t["ansible.posix.sysctl"]["name"], "").strip()
               != t["ansible.posix.sysctl"]["value"] or not (SYSCTL_D / os.path.basename(
                   t["ansible.posix.sysctl"]["sysctl_file"])).exists())
    assert changed == want and changed > 0
    assert _snapshot() == host_state
