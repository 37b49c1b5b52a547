"""remediation.yml: structure, tags, guards, and real ansible-playbook --syntax-check / --check.

Check mode must change nothing: the tests snapshot the host's sysctls and /etc/sysctl.d around
every run and restore them in teardown should anything have been written.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ansible_collections.nsguard.sysctl.plugins.plugin_utils import renderers, report
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.render_remediation import HOST_GUARD, INIT_PID_NS, INIT_USER_NS
from tests.ansible_run import ansible_env, run_playbook
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
    # an engine task that quotes tenant strings with Jinja in them (a persisted sysctl.d file
    # name, a persisted value), and two refused tasks: one no engine builds, one that reaches
    # elsewhere
    jinja = "{{ lookup('pipe', 'touch /tmp/nsg-pwned') }}"
    extra.append({"rule": "NSG010", "rule_name": "x", "severity": "warning", "host": h0, "set_id": None,
                  "container": None, "key": "kernel.msgmax", "message": "m",
                  "remediation": {"where": "host", "tasks": [
                      host_sysctl_task("NSG010", "kernel.msgmax", "8192") | {
                          "name": "NSG010 for %s" % jinja,
                          "ansible.posix.sysctl": dict(host_sysctl_task("NSG010", "kernel.msgmax", "8192")["ansible.posix.sysctl"],
                                                       sysctl_file="/etc/sysctl.d/99-%s.conf" % jinja)},
                      {"name": "NSG010 debug", "ansible.builtin.debug": {"msg": "{{ lookup('pipe', 'id') }}"}},
                      {"name": "sneaky", "ansible.posix.sysctl": {"name": "vm.swappiness", "value": "1"},
                       "delegate_to": "container1"}]}})
    fleet[h0] = dict(fleet[h0], findings=fleet[h0]["findings"] + extra)
    # a host whose name is a host pattern
    facts, findings = make_host("db*prod", 1)
    fleet["db*prod"] = {"status": "ok", "facts": facts, "findings": findings}
    facts, findings = make_host("db1prod", 1)
    fleet["db1prod"] = {"status": "ok", "facts": facts, "findings": findings}
    # the play's own namespace guard decides here, not the findings' virtualization conditions
    for entry in fleet.values():
        for f in entry.get("findings") or []:
            for t in (f.get("remediation") or {}).get("tasks") or []:
                if "ansible.posix.sysctl" in t:
                    t.pop("when", None)
    return fleet


@pytest.fixture(scope="module")
def remediation(tmp_path_factory):
    dest = tmp_path_factory.mktemp("remediation")
    model = report.build_fleet(_fleet())
    written, errors = renderers.write_reports(model, str(dest), ["remediation"])
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
    hosts_with_node_tasks = {f["host"] for f in model["findings"] if any(
        "kubernetes.core.k8s" not in t for t in (f.get("remediation") or {}).get("tasks") or [])
        and (f.get("remediation") or {}).get("where") in ("host", "container-spec")}
    inspect, plays, k8s = plays[0], plays[1:-1], plays[-1]
    assert len(plays) == len(hosts_with_node_tasks)
    # Kubernetes patches: one controller play, no task with a connection keyword
    assert k8s["hosts"] == "localhost" and k8s["connection"] == "local"
    patches = [t for dummy, t in _tasks(k8s)]
    assert patches and all(set(t) <= {"name", "kubernetes.core.k8s", "when", "tags"} for t in patches)
    # the first play reads the guard's inputs on every remediated host at once
    assert set(inspect["vars"]["nsguard_sysctl_remediation_hosts"]) == hosts_with_tasks
    stat = next(t for t in inspect["tasks"] if "ansible.builtin.stat" in t)
    assert stat["loop"] == ["pid", "user"] and stat["tags"] == ["always"]
    assert stat["ansible.builtin.stat"]["path"] == "/proc/self/ns/{{ item }}"   # not !unsafe: ours
    assert all(t["tags"] == ["always"] for t in inspect["tasks"])
    for play in plays:
        for top, task in _tasks(play):
            if {"ansible.builtin.setup", "ansible.builtin.meta", "ansible.builtin.stat"} & set(task):
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
    names = [t["name"] for dummy, t in _tasks(first) if t.get("ansible.posix.sysctl", {}).get("name") == "vm.max_map_count"]
    asking = sum(1 for f in model["findings"] if f["host"] == "node0000.example" and f["rule"] == "NSG001")
    assert asking >= 4
    assert names == ["NSG001 vm.max_map_count=262144 on the host (and %d more findings)" % (asking - 1)]
    # the refusal message counts the host's changes, not its diff-preview tasks (issue 12: "8 for 4")
    refusal = next(t for t in first["tasks"] if t.get("name") == "Refuse host-side sysctl changes inside a container")
    changes = sum(1 for dummy, t in _tasks(first) if "ansible.posix.sysctl" in t)
    assert "%d host-side sysctl changes NOT applied" % changes in refusal["ansible.builtin.debug"]["msg"]
    # Jinja from a tenant-controlled string is written !unsafe; the refused task is reported
    hostile = [t for dummy, t in _tasks(first) if "nsg-pwned" in json.dumps(t, default=str)]
    assert len(hostile) == 3                                 # the task and its two diff-preview tasks
    for task in hostile:
        _assert_marked(task)
    assert ("UNSAFE", "NSG010 for {{ lookup('pipe', 'touch /tmp/nsg-pwned') }}") in [t["name"] for t in hostile]
    assert "# skipped:" in text and "sneaky" in text and "delegate_to" in text and "NSG010 debug" in text
    # not audited hosts are named in the header
    assert "gone00.example: unreachable" in text and "broken00.example: failed" in text
    # a host name that is a pattern is not used as one
    star = next(p for p in plays if p["name"].endswith("db*prod"))
    assert star["hosts"] == "all" and star["vars"]["nsguard_sysctl_remediation_target"] == "db*prod"


def _assert_marked(value, path="$"):
    """Every string of ``value`` that Jinja would evaluate was written !unsafe."""
    if isinstance(value, tuple):
        assert value[0] == "UNSAFE", path
    elif isinstance(value, dict):
        for key, item in value.items():
            _assert_marked(key, path + "<key>")
            _assert_marked(item, "%s.%s" % (path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _assert_marked(item, "%s[%d]" % (path, index))
    elif isinstance(value, str):
        assert not re.search(r"\{\{|\{%|\{#", value) or "nsg-pwned" not in value, path


def _snapshot():
    values = {k: Path("/proc/sys/" + k.replace(".", "/")).read_text() for k in WATCHED}
    files = sorted(os.listdir(SYSCTL_D)) if SYSCTL_D.is_dir() else []
    return values, files


# What the synthetic remediation writes outside check mode: vm.max_map_count=262144 and files
# /etc/sysctl.d/90-nsguard-<key>.conf. Other engineers' tests may change other sysctls on this
# machine meanwhile (net.core.somaxconn, say), so only our own traces are looked for.
OUR_VALUES = {"vm.max_map_count": "262144"}


def _our_writes(before):
    values, files = before
    now_values, now_files = _snapshot()
    keys = [k for k, v in OUR_VALUES.items() if now_values[k].strip() == v and values[k].strip() != v]
    new_files = [f for f in set(now_files) - set(files) if f.startswith("90-nsguard-")]
    return keys, sorted(new_files)


@pytest.fixture
def host_state():
    """Snapshot the host's watched sysctls and sysctl.d; undo whatever our runs wrote (never
    another process's change)."""
    before = _snapshot()
    yield before
    keys, new_files = _our_writes(before)
    for key in keys:
        Path("/proc/sys/" + key.replace(".", "/")).write_text(before[0][key])
    for name in new_files:
        (SYSCTL_D / name).unlink()


def _inventory(tmp_path: Path, model) -> str:
    hosts = {h["name"]: {"ansible_connection": "local"} for h in model["hosts"] if h["status"] == "ok"}
    path = tmp_path / "inventory.yml"
    path.write_text(json.dumps({"all": {"hosts": hosts}}))
    return str(path)


def _in_init_namespaces() -> bool:
    return (os.stat("/proc/self/ns/pid").st_ino, os.stat("/proc/self/ns/user").st_ino) == (INIT_PID_NS, INIT_USER_NS)


@pytest.mark.slow
def test_syntax_check_and_check_mode_change_nothing(remediation, tmp_path, host_state):
    model, path = remediation
    inventory = _inventory(tmp_path, model)
    run_playbook(path, "--syntax-check", inventory=inventory, check=True)
    proc = run_playbook(path, "--check", "--diff", inventory=inventory, check=True)
    out = proc.stdout
    assert _our_writes(host_state) == ([], [])
    assert not Path("/tmp/nsg-pwned").exists()                     # the !unsafe name was never templated
    assert "lookup('pipe', 'touch /tmp/nsg-pwned')" in out
    recap = dict(re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", out, flags=re.M))
    if _in_init_namespaces():
        # on the host itself the sysctl tasks run, in check mode: they report, change nothing
        # ... and each change is counted once: by its diff preview, which shows it, not again by
        # the sysctl task (issue 12: 8 changed for 4 changes)
        assert re.search(r"TASK \[Diff of \S+vm\.max_map_count\.conf for vm\.max_map_count[^\]]*\][^\n]*\n"
                         r"(?:[-+@ ].*\n|\n)*changed: \[node0000.example\]", out)
        first = next(p for p in _load(path) if p.get("hosts") == "node0000.example")
        host_changes = sum(1 for dummy, t in _tasks(first) if "ansible.posix.sysctl" in t)
        assert host_changes >= 3 and int(recap["node0000.example"]) == host_changes
    else:
        assert "changed: [" not in out and set(recap.values()) == {"0"}
    # the pattern-named host's play ran for it alone, not for db1prod
    play = out.split("PLAY [nsguard.sysctl remediation for db*prod]")[1].split("PLAY [")[0]
    assert re.search(r"(ok|changed|skipping): \[db\*prod\]", play)
    assert not re.search(r"(ok|changed): \[db1prod\]", play)
    # container-spec tasks only when asked for; with --tags the guard's inputs are still gathered
    assert "TASK [NSG004 " not in out
    asked = run_playbook(path, "--check", "--tags", "NSG004,NSG001", inventory=inventory, check=True).stdout
    assert "TASK [NSG004 net.core." in asked and "TASK [NSG001 " in asked and "TASK [NSG002" not in asked
    assert "TASK [Namespaces of the target]" in asked
    assert _our_writes(host_state) == ([], [])


@pytest.mark.slow
def test_host_tasks_are_check_mode_safe_without_the_guard(remediation, tmp_path, host_state):
    """Run the host-side tasks themselves in --check where the guard would skip them: the
    modules must report the change and make none."""
    model, path = remediation
    plays = _load(path)
    first = next(p for p in plays if p["hosts"] == "node0000.example")
    # (the hostile task is left out: written back as plain JSON its !unsafe strings would template)
    tasks = [t for dummy, t in _tasks(first) if "ansible.posix.sysctl" in t and "nsg-pwned" not in json.dumps(t, default=str)]
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
    assert _our_writes(host_state) == ([], [])


@pytest.mark.slow
def test_host_tasks_never_run_inside_a_container(remediation, tmp_path, host_state):
    """The same playbook run from inside a new pid namespace (as a container's processes are):
    the namespace guard skips every host-side task."""
    model, path = remediation
    inventory = _inventory(tmp_path, model)
    cmd = ["unshare", "--mount", "--pid", "--fork", "--mount-proc", "--kill-child",
           str(Path(sys.executable).parent / "ansible-playbook"), "-i", inventory, str(path), "--check", "--diff"]
    proc = subprocess.run(cmd, env=ansible_env(), capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    out = proc.stdout
    assert re.search(r"TASK \[NSG001 vm\.max_map_count=262144 on the host[^\]]*\][^\n]*\n(skipping: \[[^\]]+\]\n)+", out)
    assert "changed: [" not in out
    assert set(re.findall(r"changed=(\d+)", out)) == {"0"}
    assert _our_writes(host_state) == ([], [])
