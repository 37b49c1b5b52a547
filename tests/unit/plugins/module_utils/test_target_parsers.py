"""Parsers of the target side over recorded text: key names, values, sysctl.d, /proc, mountinfo."""
from __future__ import annotations

from ansible_collections.nsguard.sysctl.plugins.module_utils import nsscan, persisted, probe, procsys, views


def test_key_names_round_trip_like_sysctl():
    assert procsys.path_to_key("net/ipv4/conf/eth0.100/rp_filter") == "net.ipv4.conf.eth0/100.rp_filter"
    assert procsys.key_to_path("net.ipv4.conf.eth0/100.rp_filter", "/p") == "/p/net/ipv4/conf/eth0.100/rp_filter"
    assert procsys.key_to_path("net/ipv4/ip_forward", "/p") == "/p/net/ipv4/ip_forward"


def test_values_as_sysctl_prints_them():
    assert procsys.format_value(b"4096\t131072\t6291456\n") == "4096\t131072\t6291456"
    assert procsys.format_value(b"") == ""
    assert procsys.format_value(b"\xff\xfe\n") == "\\xff\\xfe"
    assert procsys.normalize_value("4096  87380\t6291456") == "4096 87380 6291456"


def test_include_exclude_patterns():
    wanted = procsys.compile_filter(["net.*", "vm.max_map_count"], ["net.ipv6.*"])
    assert wanted("net.core.somaxconn") and wanted("vm.max_map_count")
    assert not wanted("net.ipv6.conf.all.forwarding") and not wanted("kernel.pid_max")
    assert procsys.compile_filter()("anything")


def test_read_tree_over_a_recorded_tree(tmp_path):
    (tmp_path / "net/core").mkdir(parents=True)
    (tmp_path / "net/core/somaxconn").write_text("4096\n")
    (tmp_path / "vm").mkdir()
    (tmp_path / "vm/drop_caches").write_text("")
    (tmp_path / "vm/drop_caches").chmod(0o200)
    keys, unreadable = procsys.read_tree(str(tmp_path))
    assert keys == {"net.core.somaxconn": {"value": "4096", "mode": "0644"}}
    assert unreadable["vm.drop_caches"]["reason"] == "write-only"


def test_sysctl_d_syntax_and_systemd_order(tmp_path):
    etc, usr = tmp_path / "etc", tmp_path / "usr"
    etc.mkdir(), usr.mkdir()
    (usr / "10-base.conf").write_text("vm.swappiness = 10\nnet.core.somaxconn=512\n")
    (usr / "50-masked.conf").write_text("vm.max_map_count = 1\n")
    (etc / "50-masked.conf").write_text("# masks the /usr file of the same name\nvm.max_map_count = 262144\n")
    (etc / "60-more.conf").write_text(
        "; comment\n-kernel.does_not_exist = 1\nnet/ipv4/conf/eth0.100/rp_filter = 2\n"
        "net.ipv4.conf.*.forwarding = 1\n-net.ipv4.conf.lo.forwarding\nnot a line\nnet.core.somaxconn = 1024\n")
    conf = tmp_path / "sysctl.conf"
    conf.write_text("vm.swappiness=60\n")
    result = persisted.read_persisted((str(etc), str(usr)), str(conf),
                                      ["net.ipv4.conf.all.forwarding", "net.ipv4.conf.lo.forwarding"])
    assert [p.rsplit("/", 1)[1] for p in result["files"]] == ["10-base.conf", "50-masked.conf", "60-more.conf", "sysctl.conf"]
    keys = result["keys"]
    assert keys["vm.max_map_count"]["value"] == "262144"           # /etc masks /usr
    assert keys["vm.swappiness"]["value"] == "60"                  # sysctl.conf last
    assert keys["net.core.somaxconn"] == {"value": "1024", "file": str(etc / "60-more.conf"), "line": 7,
                                          "ignore_errors": False}
    assert keys["kernel.does_not_exist"]["ignore_errors"] is True
    assert keys["net.ipv4.conf.eth0/100.rp_filter"]["value"] == "2"
    assert keys["net.ipv4.conf.all.forwarding"]["pattern"] == "net.ipv4.conf.*.forwarding"
    assert "net.ipv4.conf.lo.forwarding" not in keys             # "-key" alone: out of the glob
    assert [e["line"] for e in result["errors"]] == [6]
    assert "60-more.conf" in result["errors"][0]["message"]


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


def test_probe_compare_and_evidence():
    host = {"a.global": {"value": "1", "mode": "0644", "ino": 1},
            "net.x": {"value": "5", "mode": "0644", "ino": 2},
            "net.mirror": {"value": "9", "mode": "0644", "ino": 3},
            "net.hostonly": {"value": "0", "mode": "0644", "ino": 4},
            "evicted": {"value": "0", "mode": "0644", "ino": 5},
            "kernel.cad_pid": {"value": "1", "mode": "0600", "ino": 6},
            "net.ping": {"value": "1 0", "mode": "0644", "ino": 7}}
    after = {k: (v["mode"], v["ino"]) for k, v in host.items()}
    after["evicted"] = ("0644", 55)
    same = {k: [v["mode"], v["ino"], v["value"]] for k, v in host.items()}
    views_ = {"net": {"a.global": ["0644", 1, "1"], "net.x": ["0644", 20, "7"], "net.mirror": ["0444", 30, "9"],
                      "evicted": ["0644", 56, "0"], "kernel.cad_pid": same["kernel.cad_pid"],
                      "net.ping": ["0644", 70, "1 0"]},
              "ipc": dict(same),
              # One table entry whose handler reads the caller's pid namespace: another value, no owner.
              "pid": dict(same, **{"kernel.cad_pid": ["0600", 6, "0"]}),
              # A fresh user namespace translates the net key's value, through the same entry.
              "user": dict(same, **{"net.ping": ["0644", 7, "65534 65534"]})}
    result = probe.compare(host, after, views_)
    assert result["absent"] == ["net.hostonly"]
    assert result["mode_differs"] == {"net.mirror": "0444"}
    assert result["owner"] == {"net": ["net.mirror", "net.ping", "net.x"]}
    assert result["value_differs"] == {"net": ["net.x"], "pid": ["kernel.cad_pid"], "user": ["net.ping"]}
    assert result["unknown"] == ["evicted"]
    facts = dict(result, enabled=True)
    assert probe.probe_evidence(facts, "net.mirror") == {"exists": True, "mode": "0444", "same_value": True,
                                                         "same_inode": False, "owner": "net",
                                                         "value_differs_in": [], "value_only": False}
    assert probe.probe_evidence(facts, "net.hostonly")["exists"] is False
    assert probe.probe_evidence(facts, "a.global")["owner"] is None
    assert probe.probe_evidence(facts, "evicted") is None
    assert probe.probe_evidence({"enabled": False}, "a.global") is None
    cad = probe.probe_evidence(facts, "kernel.cad_pid")
    assert (cad["owner"], cad["value_only"], cad["value_differs_in"], cad["same_value"]) == (None, True, ["pid"], False)
    # The user namespace's translation does not count against the owner's (net) comparison.
    ping = probe.probe_evidence(facts, "net.ping")
    assert (ping["owner"], ping["same_value"], ping["value_differs_in"]) == ("net", True, ["user"])
    assert probe.probe_evidence(facts, "net.x")["same_value"] is False
    assert probe.value_differs_keys(facts, ("net", "ipc")) == {"net.x"}
    assert probe.value_differs_keys(facts) == {"net.x", "kernel.cad_pid", "net.ping"}


def test_probe_reads_the_older_flat_value_differs():
    """Facts gathered before value_differs was split by type: the list applies to every type."""
    facts = {"enabled": True, "namespaces": ["net", "pid"], "value_differs": ["net.x"], "owner": {"net": ["net.x"]}}
    assert probe.probe_evidence(facts, "net.x")["same_value"] is False
    assert probe.value_differs_by_type(facts) == {"net": {"net.x"}, "pid": {"net.x"}}
    assert probe.value_differs_keys({"value_differs": []}) == set()


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


def test_plan_reads_only_what_can_differ():
    host = {"net.core.somaxconn": {}, "kernel.shmmax": {}, "vm.max_map_count": {}, "user.max_user_namespaces": {}}
    owner = {"net": ["net.core.somaxconn"], "ipc": ["kernel.shmmax"], "user": ["user.max_user_namespaces"]}
    plan = views.plan_keys(["net", "ipc", "uts"], host, owner)
    assert plan["subdirs"] == ["net"]
    assert plan["names"] == ["kernel.domainname", "kernel.hostname", "kernel.shmmax"]
    assert "vm.max_map_count" not in plan["scope"]
    fallback = views.plan_keys(["ipc", "user"], host, None)
    assert fallback["names"] == ["kernel.shmmax", "user.max_user_namespaces"]
