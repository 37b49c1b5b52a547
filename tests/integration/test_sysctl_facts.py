"""sysctl_facts through the real kernel: unshare sets, ip netns, a real ansible-playbook run."""
from __future__ import annotations

import json
import os
import platform
import time
import uuid

import pytest

from tests.ansible_run import gather_facts_via_playbook, run_playbook, write_playbook
from tests.integration.nsfixtures import NetnsName, host_value, spawn_set

pytestmark = pytest.mark.root


def _find_set(facts: dict, net_inode: int, pid_shared: bool | None = None) -> dict:
    for ns_set in facts["namespace_sets"]:
        if ns_set["ns"]["net"] == net_inode:
            if pid_shared is None or ("pid" in ns_set["shares_host"]) == pid_shared:
                return ns_set
    raise AssertionError(f"no namespace set with net {net_inode} in {[s['id'] for s in facts['namespace_sets']]}")


@pytest.fixture
def distinctive_sets():
    """Two real namespace sets and a named netns, each with values the host does not have."""
    tag = uuid.uuid4().hex[:6]
    full = spawn_set(
        "echo 1234 > /proc/sys/net/core/somaxconn\n"
        "echo '20001 30001' > /proc/sys/net/ipv4/ip_local_port_range\n"
        "echo 4242424242 > /proc/sys/kernel/shmmax\n"
        f"hostname nsg-a-{tag}\n"
        "echo 12345 > /proc/sys/kernel/pid_max\n")
    net_only = spawn_set("echo 2222 > /proc/sys/net/core/somaxconn\n", flags=("-n",))
    # A user namespace that owns its network namespace, as rootless runtimes make them. The
    # mapping 0->0 keeps kuid 0: the script writes only keys of its own namespaces.
    userns = spawn_set("echo 3333 > /proc/sys/net/core/somaxconn\n"
                       "echo 77 > /proc/sys/user/max_user_namespaces\n", flags=("-U", "-r", "-n"))
    named = NetnsName()
    named.exec("sh", "-c", "echo '40000 50000' > /proc/sys/net/ipv4/ip_local_port_range")
    yield {"full": full, "net_only": net_only, "userns": userns, "named": named, "tag": tag}
    full.kill()
    net_only.kill()
    userns.kill()
    named.delete()


def test_gather_real_namespaces_through_playbook(tmp_path, distinctive_sets):
    before = {k: host_value(k) for k in ("net.core.somaxconn", "net.ipv4.ip_local_port_range",
                                         "kernel.shmmax", "kernel.pid_max", "kernel.hostname",
                                         "user.max_user_namespaces")}
    facts = gather_facts_via_playbook(tmp_path)

    # The host, as sysctl prints it.
    assert facts["schema_version"] == 3
    assert facts["host"]["kernel"]["release"] == platform.release()
    assert facts["host"]["keys"]["net.core.somaxconn"] == before["net.core.somaxconn"]
    assert facts["host"]["keys"]["net.ipv4.ip_local_port_range"] == before["net.ipv4.ip_local_port_range"]
    assert "\t" in facts["host"]["keys"]["net.ipv4.tcp_rmem"]
    # one mode for most keys, the others listed (read-only ones such as kernel.osrelease)
    assert facts["host"]["default_mode"] == "0644" and "kernel.pid_max" not in facts["host"]["modes"]
    assert facts["host"]["modes"]["kernel.osrelease"] == "0444"
    assert facts["host"]["modes"].keys() <= facts["host"]["keys"].keys()
    assert "0644" not in facts["host"]["modes"].values()
    unreadable = facts["host"]["unreadable"]
    assert unreadable["net.ipv6.conf.all.stable_secret"]["reason"] == "EIO"
    assert unreadable["net.ipv4.route.flush"]["reason"] == "write-only"

    # The full set: every distinctive value, pid_max of its own pid namespace included.
    full = _find_set(facts, distinctive_sets["full"].ns["net"], pid_shared=False)
    assert set(full["differs_from_host"]) == {"net", "ipc", "uts", "pid"}
    assert "user" in full["shares_host"]
    assert full["representative_pid"] == distinctive_sets["full"].inner_pid
    differs = full["view"]["differs"]
    assert differs["net.core.somaxconn"]["container"] == "1234"
    assert differs["net.ipv4.ip_local_port_range"]["container"] == "20001\t30001"
    assert differs["kernel.shmmax"]["container"] == "4242424242"
    assert differs["kernel.hostname"]["container"] == f"nsg-a-{distinctive_sets['tag']}"
    assert differs["kernel.pid_max"]["container"] == "12345"
    # Read-only mirrors every fresh netns shows are counted per set and listed once, in the probe.
    assert full["view"]["mode_differs_count"] >= 8 and full["view"]["mode_differs"] == {}
    assert full["view"]["absent_count"] > 50  # host-only keys (netdev_max_backlog, neigh.default.*)
    assert full["privileges"]["userns_is_host"] is True
    assert full["errors"] == []

    # A set with only its own network namespace.
    net_only = _find_set(facts, distinctive_sets["net_only"].ns["net"])
    assert net_only["differs_from_host"] == ["net"]
    assert net_only["view"]["differs"]["net.core.somaxconn"]["container"] == "2222"
    assert "kernel.pid_max" not in net_only["view"]["differs"]

    # Its own user namespace, which owns its network namespace.
    userns = _find_set(facts, distinctive_sets["userns"].ns["net"])
    assert set(userns["differs_from_host"]) == {"net", "user"}
    assert userns["privileges"]["userns_is_host"] is False
    assert userns["view"]["differs"]["net.core.somaxconn"]["container"] == "3333"
    assert userns["view"]["differs"]["user.max_user_namespaces"]["container"] == "77"
    assert userns["errors"] == []

    # A named netns with no process in it.
    named = _find_set(facts, distinctive_sets["named"].inode)
    assert named["pids"] == [] and named["representative_pid"] is None
    assert named["identity"]["runtime"] == "netns"
    assert named["identity"]["netns_name"] == distinctive_sets["named"].name
    assert named["view"]["differs"]["net.ipv4.ip_local_port_range"]["container"] == "40000\t50000"

    # Conntrack: every network namespace, the host's included.
    per_netns = {e["net"]: e for e in facts["conntrack"]["per_netns"]}
    assert per_netns[facts["host"]["ns"]["net"]]["host"] is True
    assert distinctive_sets["full"].ns["net"] in per_netns
    assert facts["conntrack"]["max"] == int(host_value("net.netfilter.nf_conntrack_max"))

    # The probe, without writing anything.
    probe = facts["probe"]
    assert probe["enabled"] and set(probe["namespaces"]) == {"net", "ipc", "uts", "user", "pid"}
    assert "net.core.netdev_max_backlog" in probe["absent"]
    assert probe["mode_differs"]["net.core.rmem_max"] == "0444"
    assert "net.core.somaxconn" in probe["owner"]["net"]
    assert "kernel.shmmax" in probe["owner"]["ipc"]
    assert "kernel.pid_max" in probe["owner"]["pid"]
    assert "user.max_user_namespaces" in probe["owner"]["user"]
    assert "vm.max_map_count" not in {k for keys in probe["owner"].values() for k in keys}

    # Nothing on the host changed.
    assert {k: host_value(k) for k in before} == before


def test_facts_module_mode_and_check_mode(tmp_path, distinctive_sets):
    """As a facts module (gather_facts) and in check mode, the same facts arrive."""
    out = tmp_path / "facts.json"
    play = [{"hosts": "localhost", "gather_facts": True,
             "module_defaults": {"nsguard.sysctl.sysctl_facts": {"include": ["net.core.*", "kernel.hostname"]}},
             "tasks": [{"ansible.builtin.copy": {"content": "{{ ansible_facts.nsguard_sysctl | to_json }}",
                                                 "dest": str(out)}, "check_mode": False}]}]
    book = tmp_path / "facts_module.yml"
    book.write_text(json.dumps(play))
    run_playbook(book, "--check", check=True,
                 env={"ANSIBLE_FACTS_MODULES": "nsguard.sysctl.sysctl_facts", "ANSIBLE_GATHER_SUBSET": "!all"})
    facts = json.loads(out.read_text())
    assert facts["options"]["include"] == ["net.core.*", "kernel.hostname"]
    assert set(facts["host"]["keys"]) <= {k for k in facts["host"]["keys"] if k.startswith("net.core.")} | {"kernel.hostname"}
    full = _find_set(facts, distinctive_sets["full"].ns["net"], pid_shared=False)
    assert full["view"], full["errors"]
    assert full["view"]["differs"]["net.core.somaxconn"]["container"] == "1234"
    assert full["view"]["differs"]["kernel.hostname"]["container"].startswith("nsg-a-")


def test_bad_option_is_a_clear_error(tmp_path):
    book = write_playbook(tmp_path / "bad.yml", [
        {"nsguard.sysctl.sysctl_facts": {"timeout": -1}, "register": "r", "ignore_errors": True},
        {"ansible.builtin.copy": {"content": "{{ r | to_json }}", "dest": str(tmp_path / "r.json")}},
    ])
    run_playbook(book, check=True)
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["failed"] is True
    assert "timeout" in result["msg"] and "-1" in result["msg"]


@pytest.mark.parametrize("runtime_paths,words", [
    ({"dokcer_roots": ["/data/docker"]}, ["unknown location kind 'dokcer_roots'", "docker_roots"]),
    ({"lxc_paths": "/srv/lxc"}, ["lxc_paths must be a list of absolute paths"]),
    ({"lxc_paths": ["srv/lxc"]}, ["lxc_paths must be a list of absolute paths"]),
])
def test_bad_runtime_paths_name_the_kind(tmp_path, runtime_paths, words):
    book = write_playbook(tmp_path / "bad.yml", [
        {"nsguard.sysctl.sysctl_facts": {"runtime_paths": runtime_paths}, "register": "r", "ignore_errors": True},
        {"ansible.builtin.copy": {"content": "{{ r | to_json }}", "dest": str(tmp_path / "r.json")}},
    ])
    run_playbook(book, check=True)
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["failed"] is True and result["msg"].startswith("option runtime_paths: "), result["msg"]
    assert all(word in result["msg"] for word in words), result["msg"]


def test_runtime_paths_move_a_runtime_root_and_a_planted_link_is_not_followed(tmp_path):
    """An LXC path given by the option is scanned; a container config planted there as a symlink
    (to a file only root may read) is an error naming it, through a real playbook."""
    lxc = tmp_path / "lxc"
    (lxc / "web").mkdir(parents=True)
    (lxc / "web" / "config").symlink_to("/etc/shadow")
    ns_set = spawn_set(flags=("-u",))  # runtime metadata is scanned when there is a set to name
    try:
        facts = gather_facts_via_playbook(tmp_path, {"probe": False, "include": ["kernel.hostname"],
                                                     "runtime_paths": {"lxc_paths": [str(lxc)]}})
    finally:
        ns_set.kill()
    assert facts["options"]["runtime_paths"] == {"lxc_paths": [str(lxc)]}
    planted = [e for e in facts["errors"] if e.get("file") == str(lxc / "web" / "config")]
    assert planted and "symbolic link" in planted[0]["message"] and "not followed" in planted[0]["message"], facts["errors"]
    assert "root:" not in json.dumps(facts)  # nothing of /etc/shadow came through


def test_sets_killed_during_gather_are_recorded_and_the_rest_complete(monkeypatch):
    """Real sets, a third killed after the scan and before their namespaces are entered."""
    from ansible_collections.nsguard.sysctl.plugins.module_utils import views
    from ansible_collections.nsguard.sysctl.plugins.modules import sysctl_facts

    sets = [spawn_set(f"echo {1000 + i} > /proc/sys/net/core/somaxconn\n", flags=("-n", "-i", "-u")) for i in range(9)]
    victims = {s.ns["net"]: s for s in sets[::3]}
    real_make_reader = views.make_reader

    def make_reader_then_kill(ns_set, *args, **kwargs):
        reader = real_make_reader(ns_set, *args, **kwargs)
        victim = victims.get(ns_set["ns"]["net"])
        if victim is not None:
            victim.kill()  # the container exits between the scan and its turn to be read
        return reader

    monkeypatch.setattr(views, "make_reader", make_reader_then_kill)
    params = dict(containers=True, probe=False, view="diff", include=[], exclude=[], timeout=5.0,
                  gather_timeout=60.0, parallel=0, max_pids_per_set=20, runtime_cli=False,
                  sysctl_d_dirs=[], sysctl_conf=None)
    try:
        facts = sysctl_facts.gather(params)
    finally:
        for s in sets:
            s.kill()
    by_net = {s["ns"]["net"]: s for s in facts["namespace_sets"]}
    for index, made in enumerate(sets):
        got = by_net[made.ns["net"]]
        if made.ns["net"] in victims:
            assert got["view"] is None
            assert got["errors"] and got["errors"][0]["stage"] == "vanished", got["errors"]
            assert "exited" in got["errors"][0]["message"]
        else:
            assert got["errors"] == []
            assert got["view"]["differs"]["net.core.somaxconn"]["container"] == str(1000 + index)
    recorded = [e for e in facts["errors"] if e.get("stage") == "vanished"]
    assert len(recorded) == len(victims)


def test_a_hung_reader_is_killed_at_its_timeout_and_others_finish():
    from ansible_collections.nsguard.sysctl.plugins.module_utils import nsenter

    def hang():
        time.sleep(60)

    started = time.monotonic()
    answers = nsenter.run_parallel([nsenter.Job("hung", hang), nsenter.Job("fine", os.getpid)],
                                   parallel=2, timeout=0.5)
    elapsed = time.monotonic() - started
    assert answers["hung"]["ok"] is False and answers["hung"]["stage"] == "timeout"
    assert "0.5 s" in answers["hung"]["error"]
    assert answers["fine"]["ok"] is True
    assert elapsed < 5
