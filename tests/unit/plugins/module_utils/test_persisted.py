"""persisted: where a sysctl.d link may not lead (runtime state directories, registered or
default), with real links in a temporary directory."""
from __future__ import annotations

import os

from ansible_collections.nsguard.sysctl.plugins.module_utils import persisted, runtime_paths


def test_refused_roots_hold_the_runtimes_default_directories():
    roots = persisted.refused_roots()
    for root in ("/proc", "/var/lib/docker", "/var/lib/containers/storage", "/var/lib/lxc",
                 "/run/containerd/io.containerd.runtime.v2.task", "/run/containerd/runc", "/run/docker",
                 "/var/lib/containerd"):
        assert root in roots, root
    # A pattern's magic part is dropped: the directory above it is refused.
    assert not any("*" in root for root in roots)


def test_a_link_into_a_registered_runtime_root_is_refused(tmp_path):
    runtime = tmp_path / "runtime"
    (runtime / "c1" / "rootfs").mkdir(parents=True)
    (runtime / "c1" / "rootfs" / "x.conf").write_text("vm.bait = 1\n")
    # Registered under the name of a link to it: the link's target is refused too.
    os.symlink(runtime, tmp_path / "runtime-link")
    sysctl_d = tmp_path / "sysctl.d"
    sysctl_d.mkdir()
    os.symlink(runtime / "c1" / "rootfs" / "x.conf", sysctl_d / "10-rootfs.conf")
    (sysctl_d / "20-good.conf").write_text("vm.swappiness = 10\n")

    # Without the registration the link is an ordinary one and is followed: the control.
    assert persisted.read_persisted((str(sysctl_d),), None, ())["keys"]["vm.bait"]["value"] == "1"

    got = persisted.read_persisted((str(sysctl_d),), None, (),
                                   runtime_paths={"storage_roots": [str(tmp_path / "runtime-link")]})
    assert "vm.bait" not in got["keys"]
    assert got["keys"]["vm.swappiness"]["value"] == "10"
    assert got["files"] == [str(sysctl_d / "20-good.conf")]
    assert [e["message"] for e in got["errors"]] == [
        "%s: leads under %s (%s -> %s); not followed; skipped" % (
            sysctl_d / "10-rootfs.conf", runtime, sysctl_d / "10-rootfs.conf", runtime / "c1" / "rootfs" / "x.conf")]


def test_kinds_that_name_files_are_not_refused(tmp_path):
    # daemon.json, lxc.conf and sockets are files, not directories of container state.
    paths = {"docker_daemon_json": [str(tmp_path / "daemon.json")], "lxc_paths": [str(tmp_path / "lxc") + "/"]}
    assert runtime_paths.state_dirs(paths) == [str(tmp_path / "lxc")]


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
