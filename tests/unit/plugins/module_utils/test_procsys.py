"""procsys: key names, values and patterns as sysctl(8) has them, and a /proc/sys walk over a
recorded tree."""
from __future__ import annotations

from ansible_collections.nsguard.sysctl.plugins.module_utils import procsys


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
