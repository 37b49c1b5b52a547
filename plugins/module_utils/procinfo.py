# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host-side facts about one process, from ``/proc/PID/*`` only.

Parsers for ``/proc/PID/cgroup``, ``/proc/PID/status`` (capabilities), ``/proc/PID/mountinfo``
and ``/proc/PID/cmdline`` (pure functions over text, unit-tested on recorded files), and
:func:`read_privileges`, which says how much of the host a container's init can touch:
its effective capabilities, whether ``/proc/sys`` is writable in its mount namespace and whether
it runs in the host's user namespace.

Everything is read from the host's ``/proc``: nothing inside a container's filesystem is opened
and nothing is executed. Target side: standard library only, Python >= 3.8.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import re

# Capability numbers from include/uapi/linux/capability.h (CAP_LAST_CAP is 40 on 6.x).
CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
    "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
)

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


# ---------------------------------------------------------------------------------------------
# Pure parsers
# ---------------------------------------------------------------------------------------------

def parse_cmdline(raw):
    # type: (bytes) -> list
    """``/proc/PID/cmdline`` -> argv. A process that rewrote its argv (``[lxc monitor] ...``)
    gives one element with spaces; a kernel thread gives ``[]``."""
    if not raw:
        return []
    return [a.decode("utf-8", "backslashreplace") for a in raw.rstrip(b"\0").split(b"\0")]


def parse_cgroup(text):
    # type: (str) -> list
    """``/proc/PID/cgroup`` -> ``[(hierarchy_id, controllers, path)]``.

    v1 lines name their controllers (``4:memory:/docker/ID``), the v2 line has an empty
    controller list (``0::/docker/ID``). The path may itself contain ``:``.
    """
    out = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        try:
            hid = int(parts[0])
        except ValueError:
            continue
        out.append((hid, parts[1], parts[2]))
    return out


def cgroup_paths(entries):
    # type: (list) -> list
    """The distinct cgroup paths of :func:`parse_cgroup` output, in file order."""
    seen = []
    for _hid, _ctrl, path in entries:
        if path not in seen:
            seen.append(path)
    return seen


def parse_status(text):
    # type: (str) -> dict
    """``/proc/PID/status`` -> ``{field: value}`` (values stripped, as text)."""
    out = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            out[name] = value.strip()
    return out


def cap_names(mask):
    # type: (int) -> list
    """Capability names of a bit mask, lowest bit first; bits beyond the table as ``CAP_<n>``."""
    names = []
    bit = 0
    while mask >> bit:
        if (mask >> bit) & 1:
            names.append(CAPABILITIES[bit] if bit < len(CAPABILITIES) else "CAP_%d" % bit)
        bit += 1
    return names


def unescape_mount_field(field):
    # type: (str) -> str
    """mountinfo writes space, tab, newline and backslash in paths as ``\\ooo``."""
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text):
    # type: (str) -> list
    """``/proc/PID/mountinfo`` -> a list of mounts in file order (see proc(5)).

    Each mount: ``id``, ``parent``, ``root`` (the path inside its filesystem), ``mount_point``
    (relative to the process's root), ``options`` (per-mount), ``fstype``, ``source`` and
    ``super_options``. Lines that do not parse are skipped.
    """
    mounts = []
    # The kernel separates lines with \n and fields with a space and escapes exactly those in
    # paths; str.splitlines()/split() would also break at \x1c-\x1f, \x85 and other
    # characters a tenant can put in a mount point, and shift the fields after it.
    for line in text.split("\n"):
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = [f for f in left.split(" ") if f]
        tail = [f for f in right.split(" ") if f]
        if len(fields) < 6 or not tail:
            continue
        try:
            mount_id, parent = int(fields[0]), int(fields[1])
        except ValueError:
            continue
        mounts.append({
            "id": mount_id,
            "parent": parent,
            "root": unescape_mount_field(fields[3]),
            "mount_point": unescape_mount_field(fields[4]),
            "options": fields[5].split(","),
            "fstype": tail[0],
            "source": unescape_mount_field(tail[1]) if len(tail) > 1 else "",
            "super_options": tail[2].split(",") if len(tail) > 2 else [],
        })
    return mounts


def _is_ro(mount):
    # type: (dict) -> bool
    return "ro" in mount["options"] or "ro" in mount["super_options"]


def _top_mount(mounts, point):
    # type: (list, str) -> object
    """The mount that is visible at ``point``: of several stacked there, the one no other
    mount at the same point sits on (its id is nobody's parent); ties go to the later line."""
    here = [m for m in mounts if m["mount_point"] == point]
    if not here:
        return None
    under = set(m["parent"] for m in here)
    top = [m for m in here if m["id"] not in under]
    return (top or here)[-1]


def _covering_points(path):
    # type: (str) -> list
    """``/proc/sys`` -> ``["/proc/sys", "/proc", "/"]``: where a mount could cover ``path``."""
    points = [path]
    while path not in ("/", ""):
        path = path.rsplit("/", 1)[0] or "/"
        points.append(path)
    return points


def proc_sys_access(mounts):
    # type: (list) -> dict
    """Whether ``/proc/sys`` is writable through the mounts of one mount namespace.

    Returns ``{"proc_sys_rw": bool|None, "rw_subtrees": [mount points]}``:

    - ``proc_sys_rw``: the mount that covers ``/proc/sys`` (the deepest mount point among
      ``/proc/sys``, ``/proc``, ``/``, topmost of a stack) is a procfs mounted read-write.
      ``False`` when it is read-only or something other than procfs hides it (runc, Docker and
      Podman bind ``/proc/sys`` read-only over a rw ``/proc``); ``None`` when no procfs covers
      it (``/proc`` not mounted, or no mountinfo).
    - ``rw_subtrees``: procfs mounts *below* ``/proc/sys`` that are read-write although
      ``/proc/sys`` is not, e.g. LXC's ``proc:mixed`` leaves ``/proc/sys/net`` writable.
    """
    covering = None
    for point in _covering_points("/proc/sys"):
        covering = _top_mount(mounts, point)
        if covering is not None:
            break
    if covering is None or (covering["mount_point"] == "/" and covering["fstype"] != "proc"):
        rw = None
    else:
        rw = covering["fstype"] == "proc" and not _is_ro(covering)
    subtrees = []
    for point in sorted(set(m["mount_point"] for m in mounts if m["mount_point"].startswith("/proc/sys/"))):
        top = _top_mount(mounts, point)
        if top is not None and top["fstype"] == "proc" and not _is_ro(top):
            subtrees.append(point)
    return {"proc_sys_rw": rw, "rw_subtrees": subtrees if rw is not True else []}


def privileges_from_text(status_text, mountinfo_text, host_bounding):
    # type: (str, object, int) -> dict
    """The privilege signals of one process from its status and mountinfo texts.

    ``privileged`` means every capability of the host's bounding set is effective: what
    ``docker run --privileged`` gives (a runtime cannot give more than the host's bounding
    set, which on some hosts lacks e.g. CAP_SYS_RESOURCE). ``mountinfo_text`` None: unknown.
    """
    status = parse_status(status_text)
    cap_eff = int(status.get("CapEff", "0"), 16)
    out = {
        "cap_eff": "%016x" % cap_eff,
        "capabilities": cap_names(cap_eff),
        "privileged": bool(host_bounding) and (cap_eff & host_bounding) == host_bounding,
        "proc_sys_rw": None,
        "proc_sys_rw_subtrees": [],
    }
    if mountinfo_text is not None:
        access = proc_sys_access(parse_mountinfo(mountinfo_text))
        out["proc_sys_rw"] = access["proc_sys_rw"]
        out["proc_sys_rw_subtrees"] = access["rw_subtrees"]
    return out


# ---------------------------------------------------------------------------------------------
# Readers (host /proc only)
# ---------------------------------------------------------------------------------------------

def _read_text(path):
    # type: (str) -> str
    with open(path, "r") as handle:
        return handle.read()


def read_cgroup_paths(pid, proc="/proc"):
    # type: (int, str) -> list
    """Cgroup paths of a process; raises OSError when it vanished."""
    return cgroup_paths(parse_cgroup(_read_text("%s/%d/cgroup" % (proc, pid))))


def read_argv(pid, proc="/proc", limit=65536):
    # type: (int, str, int) -> list
    """argv of a process; raises OSError when it vanished."""
    with open("%s/%d/cmdline" % (proc, pid), "rb") as handle:
        return parse_cmdline(handle.read(limit))


def host_bounding_set(proc="/proc"):
    # type: (str) -> int
    """The host's capability bounding set: that of PID 1, else our own."""
    for pid in ("1", "self"):
        try:
            return int(parse_status(_read_text("%s/%s/status" % (proc, pid))).get("CapBnd", "0"), 16)
        except (OSError, ValueError):
            continue
    return 0


def _ns_inode(path):
    # type: (str) -> int
    return os.stat(path).st_ino


def read_privileges(pid, host_ns, proc="/proc", host_bounding=None):
    # type: (int, dict, str, object) -> dict
    """Privilege signals of ``pid`` (a namespace set's init), read from the host's /proc.

    ``host_ns`` is ``{type: inode}`` of the host (only ``user`` is used; our own user
    namespace when absent). Returns ``cap_eff`` (hex), ``capabilities`` (names), ``privileged``,
    ``proc_sys_rw``, ``proc_sys_rw_subtrees``, ``userns_is_host`` and ``errors`` (a list of
    ``{stage, message}``; the caller moves them to the set's errors). Never raises OSError:
    a process that vanished or cannot be read gives ``None`` fields and an error naming it.
    """
    if host_bounding is None:
        host_bounding = host_bounding_set(proc)
    out = {"cap_eff": None, "capabilities": [], "privileged": None, "proc_sys_rw": None,
           "proc_sys_rw_subtrees": [], "userns_is_host": None, "errors": []}
    base = "%s/%d" % (proc, pid)
    try:
        status_text = _read_text(base + "/status")
    except OSError as exc:
        out["errors"].append({"stage": "privileges", "message": _describe(exc, base + "/status")})
        return out
    mountinfo_text = None
    try:
        mountinfo_text = _read_text(base + "/mountinfo")
    except OSError as exc:
        out["errors"].append({"stage": "privileges", "message": _describe(exc, base + "/mountinfo")})
    out.update(privileges_from_text(status_text, mountinfo_text, host_bounding))
    try:
        host_user = host_ns.get("user") if host_ns else None
        if host_user is None:
            host_user = _ns_inode("%s/self/ns/user" % proc)
        out["userns_is_host"] = _ns_inode(base + "/ns/user") == host_user
    except OSError as exc:
        out["errors"].append({"stage": "privileges", "message": _describe(exc, base + "/ns/user")})
    return out


def _describe(exc, path):
    # type: (OSError, str) -> str
    if exc.errno in (errno.ENOENT, errno.ESRCH):
        return "%s: the process exited" % path
    return "%s: %s" % (path, exc.strerror or exc)
