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


def test_read_tree_changes_leaves_out_what_it_sees_as_known(tmp_path):
    """The probe's reader: a key with the known inode and value is left out, a value changed in
    place keeps the known mode, a file made anew is read whole, a removed one is absent."""
    for rel, text in (("kernel/ostype", "Linux\n"), ("kernel/pid_max", "4194304\n"),
                      ("net/core/somaxconn", "4096\n"), ("net/core/gone", "1\n"), ("vm/drop_caches", "")):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    (tmp_path / "vm/drop_caches").chmod(0o200)
    keys, unreadable = procsys.read_tree(str(tmp_path), with_inodes=True)
    known = dict(keys, **unreadable)
    (tmp_path / "kernel/pid_max").write_text("32768\n")  # same inode, another value
    (tmp_path / "net/core/made").write_text("4096\n")  # another inode (and mode) under the same name,
    (tmp_path / "net/core/made").chmod(0o444)  # made while the old one exists: no inode reused
    os.replace(tmp_path / "net/core/made", tmp_path / "net/core/somaxconn")
    (tmp_path / "net/core/gone").unlink()
    (tmp_path / "net/core/new").write_text("7\n")  # not known: not read
    changed, refused, absent = procsys.read_tree_changes(str(tmp_path), known)
    somaxconn = tmp_path / "net/core/somaxconn"
    assert changed == {
        "kernel.pid_max": {"value": "32768", "mode": "0644", "ino": known["kernel.pid_max"]["ino"]},
        "net.core.somaxconn": {"value": "4096", "mode": "0444", "ino": somaxconn.stat().st_ino},
    }
    assert list(refused) == ["vm.drop_caches"] and refused["vm.drop_caches"]["reason"] == "write-only"
    assert absent == ["net.core.gone"]


@pytest.mark.skipif(os.geteuid() != 0, reason="unshares a throwaway network namespace")
def test_read_tree_changes_in_a_fresh_netns_matches_a_whole_read():
    """Through the real kernel: in a throwaway network namespace, what the shortcut keeps is what a
    whole read shows otherwise than the host (values that change by themselves aside)."""
    from ansible_collections.nsguard.sysctl.plugins.module_utils import nsenter, probe

    def fresh_view():
        nsenter.unshare(nsenter.NS_FLAGS["net"])
        whole = probe.differences(known, *procsys.read_tree(wanted=known.__contains__, with_inodes=True))
        short = probe.differences(known, *procsys.read_tree_changes(procsys.PROC_SYS, known))
        return [{"absent": sorted(d["absent"]),
                 "differs": {k: v for k, v in d["differs"].items() if k not in procsys.VOLATILE_KEYS}}
                for d in (whole, short)]

    for _attempt in range(3):  # an interface may come or go between the reads
        keys, unreadable = procsys.read_tree(with_inodes=True)
        known = dict(keys, **unreadable)
        whole, short = nsenter.run_in_grandchild(fresh_view)
        if whole == short:
            break
    assert whole == short
    assert "net.core.somaxconn" in short["differs"] and "net.core.somaxconn" not in short["absent"]
    assert short["absent"] and "kernel.ostype" not in short["differs"]
