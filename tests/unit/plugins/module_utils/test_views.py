"""views: what a namespace set's read plans, reads and reports (the diff), over recorded trees and a
real network namespace."""
from __future__ import annotations

import os
import subprocess

import pytest

from ansible_collections.nsguard.sysctl.plugins.module_utils import nsenter, nsscan, procsys, views


def test_view_diff_is_compact():
    host = {"net.core.somaxconn": {"value": "4096", "mode": "0644"},
            "net.core.rmem_max": {"value": "212992", "mode": "0644"},
            "net.core.netdev_max_backlog": {"value": "1000", "mode": "0644"},
            "net.ipv4.conf.eth0.forwarding": {"value": "0", "mode": "0644"},
            "net.ipv4.tcp_syncookies": {"value": "1", "mode": "0644"},
            "net.netfilter.nf_conntrack_count": {"value": "10", "mode": "0444"}}
    seen = {"net.core.somaxconn": {"value": "1024", "mode": "0644"},
            "net.core.rmem_max": {"value": "212992", "mode": "0444"},
            "net.ipv4.conf.lo.forwarding": {"value": "0", "mode": "0644"},
            "net.netfilter.nf_conntrack_count": {"value": "3", "mode": "0444"}}
    probe = {"enabled": True, "absent": ["net.core.netdev_max_backlog"], "mode_differs": {}}
    view = views.diff_view(seen, {}, host, {}, set(host), probe=probe, requested={"net.core.somaxconn": "1024"})
    assert view["absent"] == ["net.ipv4.tcp_syncookies"]      # not the host-only key, not eth0's
    assert view["absent_count"] == 3
    assert view["interfaces"] == ["lo"]
    assert view["mode_differs"] == {"net.core.rmem_max": {"host": "0644", "container": "0444"}}
    probe["mode_differs"] = {"net.core.rmem_max": "0444"}  # a mirror every fresh netns shows
    again = views.diff_view(seen, {}, host, {}, set(host), probe=probe)
    assert again["mode_differs"] == {} and again["mode_differs_count"] == 1
    assert view["differs"] == {"net.core.somaxconn": {"host": "4096", "container": "1024"}}
    assert view["requested_values"] == {"net.core.somaxconn": "1024"}
    assert views.conntrack_count(seen) == 3
    assert "keys" not in view and "modes" not in view
    full = views.diff_view(seen, {}, host, {}, set(host), probe=probe, full=True)
    # the full view in the host's shape (facts schema_version 3): flat tables, one default mode
    # (of two equally common modes the lower) and the keys with another
    assert full["keys"] == {"net.core.rmem_max": "212992", "net.core.somaxconn": "1024",
                            "net.ipv4.conf.lo.forwarding": "0", "net.netfilter.nf_conntrack_count": "3"}
    assert full["default_mode"] == "0444"
    assert full["modes"] == {"net.core.somaxconn": "0644", "net.ipv4.conf.lo.forwarding": "0644"}


def test_plan_reads_only_what_can_differ():
    host = {"net.core.somaxconn": {}, "kernel.shmmax": {}, "vm.max_map_count": {}, "user.max_user_namespaces": {}}
    owner = {"net": ["net.core.somaxconn"], "ipc": ["kernel.shmmax"], "user": ["user.max_user_namespaces"]}
    plan = views.plan_keys(["net", "ipc", "uts"], host, owner)
    assert plan["subdirs"] == ["net"]
    assert plan["names"] == ["kernel.domainname", "kernel.hostname", "kernel.shmmax"]
    assert "vm.max_map_count" not in plan["scope"]
    fallback = views.plan_keys(["ipc", "user"], host, None)
    assert fallback["names"] == ["kernel.shmmax", "user.max_user_namespaces"]


root = pytest.mark.skipif(os.geteuid() != 0, reason="entering namespaces needs root")


def test_interface_of_a_per_device_key():
    assert views.interface_of("net.ipv4.conf.eth0.rp_filter") == "eth0"
    assert views.interface_of("net.ipv4.conf.eth0/100.rp_filter") == "eth0/100"  # VLAN eth0.100
    assert views.interface_of("net.ipv6.neigh.lo.retrans_time") == "lo"
    assert views.interface_of("net.ipv4.conf.all.rp_filter") is None
    assert views.interface_of("net.ipv4.conf.default.rp_filter") is None
    assert views.interface_of("net.core.somaxconn") is None


def test_interfaces_in_is_interface_of_each_key():
    keys = ["net.ipv4.conf.eth0.rp_filter", "net.ipv4.conf.eth0/100.rp_filter", "net.ipv6.neigh.lo.retrans_time",
            "net.ipv4.conf.all.rp_filter", "net.ipv6.conf.default.mtu", "net.core.somaxconn", "net.mpls.conf.m0.input",
            "net.ipv4.conf.eth1", "net.ipv4.neigh.br0.gc_stale_time", "kernel.hostname"]
    assert views.interfaces_in(keys) == {views.interface_of(k) for k in keys} - {None}
    assert views.interfaces_in(keys) == {"eth0", "eth0/100", "lo", "m0", "br0"}


def test_group_key_joins_sets_of_one_network_namespace():
    pod_a = {"id": "a", "ns": {"net": 7}, "differs_from_host": ["net", "pid"]}
    pod_b = {"id": "b", "ns": {"net": 7}, "differs_from_host": ["net", "pid", "ipc"]}
    rootless = {"id": "c", "ns": {"net": 7}, "differs_from_host": ["net", "user"]}
    no_net = {"id": "d", "ns": {"net": 1}, "differs_from_host": ["ipc"]}
    assert views.group_key(pod_a) == views.group_key(pod_b) == "net:7"
    assert views.group_key(rootless) == "set:c"
    assert views.group_key(no_net) == "set:d"
    assert views.group_key(pod_a, full=True) == "set:a"


def test_read_view_reads_the_plan_and_shares_a_groups_net_tree(tmp_path):
    (tmp_path / "net/core").mkdir(parents=True)
    (tmp_path / "net/core/somaxconn").write_text("4096\n")
    (tmp_path / "kernel").mkdir()
    (tmp_path / "kernel/hostname").write_text("box\n")
    (tmp_path / "kernel/pid_max").write_text("4194304\n")
    (tmp_path / "vm").mkdir()
    (tmp_path / "vm/swappiness").write_text("60\n")
    plan = {"subdirs": ["net"], "names": ["kernel.hostname"], "pid_names": ["kernel.pid_max"], "scope": set()}
    cache = {}
    keys, unreadable = views.read_view(plan, root=str(tmp_path), tree_cache=cache)
    assert {k: v["value"] for k, v in keys.items()} == {
        "net.core.somaxconn": "4096", "kernel.hostname": "box", "kernel.pid_max": "4194304"}
    assert unreadable == {}
    # The next member of the group takes the net tree from the cache, not from the files.
    (tmp_path / "net/core/somaxconn").write_text("1\n")
    again, _unreadable = views.read_view(dict(plan, names=[], pid_names=[]), root=str(tmp_path), tree_cache=cache)
    assert again == {"net.core.somaxconn": keys["net.core.somaxconn"]}
    assert list(cache) == [("net",)] and "kernel.hostname" not in cache[("net",)][0]


def _net_keys():
    keys, unreadable = procsys.read_tree(subdirs=["net"])
    return keys, unreadable


@root
def test_a_reader_diffs_a_real_network_namespace_against_the_host(unshared):
    made = unshared("-n")
    subprocess.run(["nsenter", "-t", str(made.pid), "-n", "sh", "-c", "echo 1234 > /proc/sys/net/core/somaxconn"],
                   check=True)
    host_keys, host_unreadable = _net_keys()
    assert host_keys["net.core.somaxconn"]["value"] != "1234"
    ns_set = nsscan.describe_set(nsscan.read_ns(made.pid), [made.pid], nsscan.read_ns(os.getpid()))
    plan = views.plan_keys(ns_set["differs_from_host"], host_keys, None)
    reader = views.make_reader(ns_set, host_keys, host_unreadable, plan, None, None, False)
    stale = dict(ns_set, ns=dict(ns_set["ns"], net=1))  # as if the pid were reused since the scan
    stale_reader = views.make_reader(stale, host_keys, host_unreadable, plan, None, None, False)
    group = views.make_group_reader([("stale", stale_reader), ("real", reader)])
    answers = nsenter.run_parallel([nsenter.Job("group", group)], parallel=1, timeout=20.0)["group"]["value"]
    assert answers["stale"]["ok"] is False and answers["stale"]["stage"] == "enter"
    assert "net namespace of the set changed since the scan" in answers["stale"]["error"]
    view = answers["real"]["value"]["view"]
    assert view["differs"]["net.core.somaxconn"] == {"host": host_keys["net.core.somaxconn"]["value"],
                                                     "container": "1234"}
    assert view["interfaces"] == ["lo"]
