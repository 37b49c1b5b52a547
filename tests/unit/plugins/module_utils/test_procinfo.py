"""procinfo parsers on the /proc files of real containers' inits (``fixtures/runtimes/host/proc``)
and on constructed mount tables for the cases the recorded runtimes do not show."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ansible_collections.nsguard.sysctl.plugins.module_utils import procinfo

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "runtimes" / "host"
EXPECTED = [c for c in json.loads((FIX / "expected.json").read_text()) if c.get("pid")]
HOST_BOUNDING = 0x000001fffeffffff  # the recording host: every capability but CAP_SYS_RESOURCE
DOCKER_DEFAULT_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
                       "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SYS_CHROOT",
                       "CAP_MKNOD", "CAP_AUDIT_WRITE", "CAP_SETFCAP"]


def text(pid, name):
    return (FIX / "proc" / str(pid) / name).read_text()


def pid_of(runtime, name=None):
    return next(c["pid"] for c in EXPECTED if c["runtime"] == runtime and (name is None or c["name"] == name))


def mount(mid, parent, point, fstype="proc", options="rw", root="/", super_options="rw"):
    return "%d %d 0:1 %s %s %s - %s %s %s" % (mid, parent, root, point, options, fstype, fstype, super_options)


def test_parse_cgroup_recorded_and_odd_lines():
    entries = procinfo.parse_cgroup(text(pid_of("docker"), "cgroup"))
    assert entries[-1][0] == 0 and entries[-1][1] == ""  # the cgroup2 line
    assert {p for _h, _c, p in entries} == {"/docker/%s" % next(c["id"] for c in EXPECTED if c["runtime"] == "docker")}
    assert procinfo.parse_cgroup("0::/a:b\nbad\nx:y:z\n") == [(0, "", "/a:b")]


def test_parse_cmdline():
    assert procinfo.parse_cmdline(b"sleep\x003600\x00") == ["sleep", "3600"]
    assert procinfo.parse_cmdline(b"[lxc monitor] /var/lib/lxc web\x00") == ["[lxc monitor] /var/lib/lxc web"]
    assert procinfo.parse_cmdline(b"") == []
    assert procinfo.parse_cmdline(b"a\xff\x00") == ["a\\xff"]


def test_docker_default_capabilities():
    status = procinfo.parse_status(text(pid_of("docker"), "status"))
    assert procinfo.cap_names(int(status["CapEff"], 16)) == DOCKER_DEFAULT_CAPS


def test_cap_names_edges():
    assert procinfo.cap_names(0) == []
    assert procinfo.cap_names(1 << 40) == ["CAP_CHECKPOINT_RESTORE"]
    assert procinfo.cap_names((1 << 41) | (1 << 63)) == ["CAP_41", "CAP_63"]


def test_parse_mountinfo_escapes_and_junk():
    line = "36 35 98:0 /mnt\\040dir /with\\011tab rw,noatime master:1 - ext3 /dev/root rw,errors=continue"
    (parsed,) = procinfo.parse_mountinfo(line + "\nnot a mountinfo line\n1 2 3 - x\n")
    assert parsed["root"] == "/mnt dir" and parsed["mount_point"] == "/with\ttab"
    assert parsed["options"] == ["rw", "noatime"] and parsed["fstype"] == "ext3"
    assert parsed["super_options"] == ["rw", "errors=continue"]


@pytest.mark.parametrize("runtime,subtrees", [("docker", []), ("podman", []), ("runc", []), ("lxc", ["/proc/sys/net"]),
                                              ("containerd", [])])
def test_recorded_containers_have_read_only_proc_sys(runtime, subtrees):
    access = procinfo.proc_sys_access(procinfo.parse_mountinfo(text(pid_of(runtime), "mountinfo")))
    assert access == {"proc_sys_rw": False, "rw_paths": [], "rw_subtrees": subtrees}


@pytest.mark.parametrize("lines,expected", [
    # the host: one rw procfs at /proc
    ([mount(1, 0, "/", "ext4"), mount(2, 1, "/proc")], True),
    # docker --privileged / systempaths=unconfined: rw /proc, nothing over /proc/sys
    ([mount(1, 0, "/", "overlay"), mount(2, 1, "/proc"), mount(3, 2, "/proc/kcore", "tmpfs")], True),
    # runc's default: /proc/sys bound read-only over a rw /proc
    ([mount(1, 0, "/", "overlay"), mount(2, 1, "/proc"), mount(3, 2, "/proc/sys", options="ro", root="/sys")], False),
    # read-only procfs superblock
    ([mount(1, 0, "/", "ext4"), mount(2, 1, "/proc", options="rw", super_options="ro")], False),
    # /proc/sys hidden under a tmpfs
    ([mount(1, 0, "/", "ext4"), mount(2, 1, "/proc"), mount(3, 2, "/proc/sys", "tmpfs", options="ro")], False),
    # stacked at /proc/sys: a rw procfs mounted over the ro bind (the top one counts)
    ([mount(1, 0, "/", "ext4"), mount(2, 1, "/proc"), mount(3, 2, "/proc/sys", options="ro", root="/sys"),
      mount(4, 3, "/proc/sys", root="/sys")], True),
    # ... and the other way round
    ([mount(1, 0, "/", "ext4"), mount(2, 1, "/proc"), mount(4, 2, "/proc/sys", root="/sys"),
      mount(3, 4, "/proc/sys", options="ro", root="/sys")], False),
    # no /proc at all
    ([mount(1, 0, "/", "ext4")], None),
    ([], None),
])
def test_proc_sys_access_cases(lines, expected):
    assert procinfo.proc_sys_access(procinfo.parse_mountinfo("\n".join(lines)))["proc_sys_rw"] is expected


def test_privileges_from_text():
    docker = procinfo.privileges_from_text(text(pid_of("docker"), "status"), text(pid_of("docker"), "mountinfo"),
                                           HOST_BOUNDING)
    assert docker["cap_eff"] == "00000000a80425fb"
    assert docker["privileged"] is False and docker["proc_sys_rw"] is False
    lxc = procinfo.privileges_from_text(text(pid_of("lxc"), "status"), None, HOST_BOUNDING)
    assert lxc["privileged"] is False  # LXC drops sys_module, mac_*, sys_time
    assert lxc["proc_sys_rw"] is None  # no mountinfo: unknown
    full = "CapEff:\t%016x\n" % HOST_BOUNDING
    assert procinfo.privileges_from_text(full, None, HOST_BOUNDING)["privileged"] is True
    assert procinfo.privileges_from_text(full, None, 0)["privileged"] is False


def test_read_privileges_of_a_recorded_process():
    """Through the reader: a recorded proc tree has no ns links, which is an error, not a crash."""
    got = procinfo.read_privileges(pid_of("runc"), {"user": 1}, proc=str(FIX / "proc"), host_bounding=HOST_BOUNDING)
    assert got["cap_eff"] == "0000000020000420"
    assert got["capabilities"] == ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"]
    assert got["proc_sys_rw"] is False
    assert got["userns_is_host"] is None and got["uid_map"] is None and got["root_is_host_root"] is None
    # The recording kept neither ns links nor id maps: each is an error naming its file, not a crash.
    named = sorted(e["message"].rsplit("/", 1)[-1].split(":")[0] for e in got["errors"])
    assert named == ["gid_map", "uid_map", "user"]


def test_read_privileges_of_a_vanished_process(tmp_path):
    got = procinfo.read_privileges(424242, {}, proc=str(tmp_path))
    assert got["cap_eff"] is None and got["privileged"] is None
    assert got["errors"] == [{"stage": "privileges", "message": "%s/424242/status: the process exited" % tmp_path}]


def test_read_privileges_of_ourselves():
    got = procinfo.read_privileges(os.getpid(), {})
    assert got["errors"] == []
    assert got["userns_is_host"] is True
    assert got["uid_map"] == [[0, 0, 4294967295]] and got["root_is_host_root"] is True
    assert got["euid"] == os.geteuid()
    assert got["cap_eff"] == "%016x" % int(procinfo.parse_status(Path("/proc/self/status").read_text())["CapEff"], 16)
    if os.geteuid() == 0:
        assert got["privileged"] is True


@pytest.mark.parametrize("text,inside,host", [
    ("         0          0 4294967295\n", 0, 0),
    ("         0     100000      65536\n", 0, 100000),
    ("         0     100000      65536\n", 65535, 165535),
    ("         0     100000      65536\n", 65536, None),
    ("  1000 1000 1\n  0 0 1\n", 0, 0),            # unshare -U -r run by root: 0 -> host 0
    ("100000 0 1\n", 0, None),                      # unshare --map-user=100000: host root is 100000 inside
    ("garbage\n1 2\n-\n", 0, None),
])
def test_id_maps(text, inside, host):
    assert procinfo.maps_to_host(procinfo.parse_id_map(text), inside) == host


def test_host_bounding_set_falls_back(tmp_path):
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "status").write_text("CapBnd:\t00000000000000ff\n")
    assert procinfo.host_bounding_set(str(tmp_path)) == 0xFF
    assert procinfo.host_bounding_set(str(tmp_path / "nothing")) == 0


# Mount tables copied from real sets (tests/reliability/test_proc_sys_rw.py makes them; 6.18), each
# with the verdict a write in the set's own netns gave: the tree is writable where it says.
REAL_ROOT = "185 1 8:1 / / rw,relatime - ext4 /dev/root rw"


@pytest.mark.parametrize("lines,rw,paths", [
    # runc: /proc/sys bound read-only over a rw /proc
    (["292 185 0:142 / /proc rw,nosuid - proc proc rw", "343 292 0:142 /sys /proc/sys ro,nosuid - proc proc rw"],
     False, []),
    # a read-only /proc with a rw /proc/sys bind over it
    (["248 185 0:140 / /proc ro,nosuid - proc proc rw", "341 248 0:140 /sys /proc/sys rw,nosuid - proc proc rw"],
     True, ["/proc/sys"]),
    # /proc/sys bound twice: the last mount (on top) wins, whatever the file order
    (["292 185 0:142 / /proc rw - proc proc rw", "348 343 0:142 /sys /proc/sys rw - proc proc rw",
      "343 292 0:142 /sys /proc/sys ro - proc proc rw"], True, ["/proc/sys"]),
    (["293 185 0:143 / /proc rw - proc proc rw", "346 293 0:143 /sys /proc/sys rw - proc proc rw",
      "351 346 0:143 /sys /proc/sys ro - proc proc rw"], False, []),
    # a second procfs elsewhere while /proc/sys is read-only: the tree is writable at /tmp/p/sys
    (["315 185 0:144 / /proc rw - proc proc rw", "345 315 0:144 /sys /proc/sys ro - proc proc rw",
      "352 185 0:150 / /tmp/p rw,relatime - proc proc rw"], True, ["/tmp/p/sys"]),
    # /proc/sys bound read-write elsewhere
    (["270 185 0:141 / /proc rw - proc proc rw", "344 185 0:141 /sys /tmp/s rw - proc proc rw",
      "350 270 0:141 /sys /proc/sys ro - proc proc rw"], True, ["/tmp/s"]),
    # ... but hidden: a tmpfs mounted over /tmp/h after the procfs at /tmp/h/p
    (["338 185 0:146 / /proc rw - proc proc rw", "342 338 0:146 /sys /proc/sys ro - proc proc rw",
      "347 185 0:148 / /tmp/h/p rw - proc proc rw", "349 185 0:149 / /tmp/h rw - tmpfs t rw"], False, []),
    # a read-only procfs superblock
    (["337 185 0:145 / /proc ro,nosuid - proc proc ro"], False, []),
    # a loop in the parent links (garbage) ends, it does not hang
    (["5 5 0:1 / /proc rw - proc proc rw"], None, []),
])
def test_proc_sys_access_real_shapes(lines, rw, paths):
    got = procinfo.proc_sys_access(procinfo.parse_mountinfo("\n".join([REAL_ROOT] + lines)))
    assert (got["proc_sys_rw"], got["rw_paths"]) == (rw, paths)
