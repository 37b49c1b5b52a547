"""nsscan: /proc parsers over recorded text, and the namespace scan over real namespaces."""
from __future__ import annotations

import os

import pytest

from ansible_collections.nsguard.sysctl.plugins.module_utils import nsscan


def test_proc_stat_with_hostile_comm():
    text = "4242 (evil) (x) name) S 17 4242 4242 0 -1 4194560 " + " ".join(["0"] * 12) + " 987654 rest"
    parsed = nsscan.parse_stat(text)
    assert parsed["comm"] == "evil) (x) name"
    assert parsed["ppid"] == 17 and parsed["starttime"] == 987654


def test_mountinfo_nsfs_and_named_netns():
    text = (
        "29 24 0:4 net:[4026532246] /run/netns/blue rw shared:5 - nsfs nsfs rw\n"
        "30 24 0:4 net:[4026532300] /run/docker/netns/abc rw - nsfs nsfs rw\n"
        "31 24 0:4 net:[4026532301] /run/netns/with\\040space rw - nsfs nsfs rw\n"
        "22 1 0:21 / /proc rw,nosuid - proc proc rw\n")
    mounts = nsscan.parse_mountinfo_nsfs(text)
    assert mounts[("net", 4026532246)] == ["/run/netns/blue"]
    names = nsscan.named_netns(mounts)
    assert names == {4026532246: ["blue"], 4026532301: ["with space"]}


root = pytest.mark.skipif(os.geteuid() != 0, reason="making namespaces needs root")


def test_ns_links_and_set_ids():
    assert nsscan.parse_ns_link("net:[4026531840]") == 4026531840
    host = {"net": 1, "ipc": 2, "uts": 3, "pid": 4, "user": 5, "cgroup": 6}
    assert nsscan.set_id(dict(host, net=9), host).startswith("net:9/")
    assert "net:host" in nsscan.set_id(host, host)


@root
def test_scan_finds_a_real_set_and_describes_its_init(unshared):
    host_ns = nsscan.read_ns(os.getpid())
    made = unshared("-n", "-u")
    sets, errors = nsscan.scan(host_ns, own_pids=(os.getpid(),))
    # This machine's pid 1 may be unreadable (a sandbox's init): only ours must be read.
    assert all(e["stage"] == "scan" and "permission denied" in e["message"] for e in errors)
    ours = [s for s in sets if s["ns"]["net"] == made.ns_inode("net")]
    assert len(ours) == 1
    found = ours[0]
    assert found["differs_from_host"] == ["net", "uts"]
    assert found["representative_pid"] == made.pid and found["pids"] == [made.pid]
    assert found["init"]["comm"] == "sleep" and found["init"]["cmdline"].startswith("sleep")
    assert found["ns_paths"] == {"net": "/proc/%d/ns/net" % made.pid, "uts": "/proc/%d/ns/uts" % made.pid}
    assert "ipc" in found["shares_host"]
    assert nsscan.live_member(found) == made.pid and nsscan.still_alive(found)
    made.stop()
    assert nsscan.live_member(found) is None and not nsscan.still_alive(found)


def test_a_mounted_netns_without_processes_is_a_set_of_its_own():
    host = {"net": 1, "ipc": 2, "uts": 3, "pid": 4, "user": 5, "cgroup": 6}
    mounts = {("net", 77): ["/run/netns/blue"], ("net", 1): ["/run/netns/host-alias"], ("net", 88): ["/x"]}
    sets = [{"ns": dict(host, net=88)}]
    out = nsscan.netns_only_sets({77: ["blue"]}, mounts, sets, host)
    assert [(s["ns"]["net"], s["ns_paths"], s["netns_names"], s["pids"]) for s in out] == [
        (77, {"net": "/run/netns/blue"}, ["blue"], [])]
    assert nsscan.still_alive(out[0])  # no members to lose
