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
