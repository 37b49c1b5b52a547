"""procsys: key names, values and patterns as sysctl(8) has them, and a /proc/sys walk over a
recorded tree."""
from __future__ import annotations

import os

import pytest

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


def test_tree_inodes_are_the_inodes_stat_finds(tmp_path):
    """The probe's second look at the host: inodes from the listings, no stat; only regular files."""
    (tmp_path / "net/ipv4/conf/eth0.100").mkdir(parents=True)
    (tmp_path / "net/ipv4/conf/eth0.100/rp_filter").write_text("1\n")
    (tmp_path / "vm").mkdir()
    (tmp_path / "vm/swappiness").write_text("60\n")
    os.mkfifo(tmp_path / "vm/planted")
    inodes = procsys.tree_inodes(str(tmp_path))
    assert inodes == {"net.ipv4.conf.eth0/100.rp_filter": (tmp_path / "net/ipv4/conf/eth0.100/rp_filter").stat().st_ino,
                      "vm.swappiness": (tmp_path / "vm/swappiness").stat().st_ino}
    assert inodes == {k: ino for k, (_mode, ino) in procsys.stat_keys(str(tmp_path)).items()}


@pytest.mark.skipif(not os.path.isdir("/proc/sys/kernel"), reason="needs Linux procfs")
def test_tree_inodes_of_the_real_proc_sys_match_stat_keys():
    # procfs fills a sysctl listing's d_ino from the dentry a lookup of the name finds: the same
    # inode. Taken between two stat walks that agree (an interface may come or go meanwhile).
    for _attempt in range(5):
        stat_before = {k: ino for k, (_mode, ino) in procsys.stat_keys().items()}
        inodes = procsys.tree_inodes()
        if stat_before == {k: ino for k, (_mode, ino) in procsys.stat_keys().items()}:
            break
    assert len(inodes) > 500 and "kernel.ostype" in inodes
    assert inodes == stat_before
