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


def _prefixes(path):
    # type: (str) -> list
    """``/proc/sys`` -> ``["/proc", "/proc/sys"]``: the mount points a lookup of ``path`` crosses."""
    out = []
    current = ""
    for part in [p for p in path.split("/") if p]:
        current += "/" + part
        out.append(current)
    return out


def _resolver(mounts):
    # type: (list) -> object
    """``resolve(path)``: the mount a lookup of ``path`` ends in, the way the kernel walks it:
    from the root mount, at each component step onto the topmost mount attached *to the
    current mount* at that point. A mount whose parent was itself covered later (a tmpfs
    mounted over ``/mnt`` after a procfs at ``/mnt/p``) is therefore not reached, whatever the
    file order. The index of the mount tree is built once for all lookups."""
    children = {}
    for mount in mounts:
        children.setdefault((mount["parent"], mount["mount_point"]), []).append(mount)
    root = _top_mount(mounts, "/")

    def climb(current, point):
        seen = set()
        while current["id"] not in seen:
            seen.add(current["id"])
            above = children.get((current["id"], point))
            if not above:
                break
            current = above[-1]
        return current

    def resolve(path):
        # type: (str) -> object
        if root is None:
            return None
        current = climb(root, "/")
        for point in _prefixes(path):
            current = climb(current, point)
        return current
    return resolve


def _join(base, name):
    # type: (str, str) -> str
    return base.rstrip("/") + "/" + name


def proc_sys_access(mounts):
    # type: (list) -> dict
    """Whether the sysctl tree is writable through the mounts of one mount namespace.

    A container does not need ``/proc/sys`` itself: any procfs mount it can reach exposes the
    tree (``mount -t proc proc /mnt`` gives ``/mnt/sys``; a bind of ``/proc/sys`` elsewhere
    keeps its own read-write flag while ``/proc/sys`` is read-only). Every procfs mount that
    a path lookup reaches (:func:`_resolver`) is looked at:

    - ``proc_sys_rw``: ``True`` when the whole tree (procfs root ``/`` at ``POINT/sys``, or a
      bind of ``/sys`` at ``POINT``) is reachable through a read-write mount; ``False`` when it
      is reachable only read-only (runc, Docker, Podman bind ``/proc/sys`` read-only over a rw
      ``/proc``) or hidden (a tmpfs over it); ``None`` when no procfs shows it (``/proc`` not
      mounted, or no mountinfo).
    - ``rw_paths``: where the whole tree is writable (``/proc/sys``, ``/mnt/sys``).
    - ``rw_subtrees``: reachable read-write procfs mounts of a *part* of the tree while the
      whole is not writable, e.g. LXC's ``proc:mixed`` leaves ``/proc/sys/net`` writable.
    """
    seen = False
    rw_paths, subtrees = [], []
    resolve = _resolver(mounts)
    for mount in mounts:
        if mount["fstype"] != "proc" or resolve(mount["mount_point"]) is not mount:
            continue
        root = mount["root"]
        if root.startswith("/sys/"):
            if not _is_ro(mount):
                subtrees.append(mount["mount_point"])
            continue
        if root not in ("/", "/sys"):
            continue
        where = _join(mount["mount_point"], "sys") if root == "/" else mount["mount_point"]
        seen = True
        shown = resolve(where)
        whole = shown is mount or (shown is not None and shown["fstype"] == "proc" and shown["root"] == "/sys")
        if not whole:
            continue  # something else covers it (a tmpfs); a procfs bind there is looked at on its own
        if not _is_ro(shown) and where not in rw_paths:
            rw_paths.append(where)
    rw = True if rw_paths else (False if seen else None)
    return {"proc_sys_rw": rw, "rw_paths": rw_paths, "rw_subtrees": sorted(set(subtrees)) if not rw_paths else []}


def parse_id_map(text):
    # type: (str) -> list
    """``/proc/PID/uid_map`` (or ``gid_map``) -> ``[[inside, outside, count], ...]``.

    Read through the host's procfs, ``outside`` is a host id (the kernel prints the map
    relative to the reader's user namespace). The host's own namespace gives
    ``[[0, 0, 4294967295]]``. Lines that do not parse are skipped."""
    out = []
    for line in text.split("\n"):
        fields = line.split()
        if len(fields) != 3:
            continue
        try:
            out.append([int(f) for f in fields])
        except ValueError:
            continue
    return out


def maps_to_host(id_map, inside):
    # type: (list, int) -> object
    """The host id ``inside`` maps to, ``None`` when it is not mapped."""
    for first, outside, count in id_map:
        if first <= inside < first + count:
            return outside + (inside - first)
    return None


def int_field(value, index):
    # type: (str, int) -> object
    """Field ``index`` of a whitespace-separated status value as an int (``Uid:`` holds real,
    effective, saved and filesystem ids), ``None`` when missing or not a number."""
    fields = value.split()
    try:
        return int(fields[index])
    except (IndexError, ValueError):
        return None


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
        "proc_sys_rw_paths": [],
        "proc_sys_rw_subtrees": [],
        # Uid: real, effective, saved, fs -- in the reader's user namespace: host ids for us.
        "euid": int_field(status.get("Uid", ""), 1),
    }
    if mountinfo_text is not None:
        access = proc_sys_access(parse_mountinfo(mountinfo_text))
        out["proc_sys_rw"] = access["proc_sys_rw"]
        out["proc_sys_rw_paths"] = access["rw_paths"]
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
    ``proc_sys_rw``, ``proc_sys_rw_paths``, ``proc_sys_rw_subtrees``, ``userns_is_host``, ``euid``
    (host uid), ``uid_map``/``gid_map`` (``[[inside, host, count]]``), ``root_is_host_root`` and
    ``errors`` (a list of
    ``{stage, message}``; the caller moves them to the set's errors). Never raises OSError:
    a process that vanished or cannot be read gives ``None`` fields and an error naming it.
    """
    if host_bounding is None:
        host_bounding = host_bounding_set(proc)
    out = {"cap_eff": None, "capabilities": [], "privileged": None, "proc_sys_rw": None,
           "proc_sys_rw_paths": [], "proc_sys_rw_subtrees": [], "userns_is_host": None, "euid": None,
           "uid_map": None, "gid_map": None, "root_is_host_root": None, "errors": []}
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
    _read_id_maps(base, out)
    try:
        host_user = host_ns.get("user") if host_ns else None
        if host_user is None:
            host_user = _ns_inode("%s/self/ns/user" % proc)
        out["userns_is_host"] = _ns_inode(base + "/ns/user") == host_user
    except OSError as exc:
        out["errors"].append({"stage": "privileges", "message": _describe(exc, base + "/ns/user")})
    return out


def _read_id_maps(base, out):
    # type: (str, dict) -> None
    """``uid_map``/``gid_map`` and whether root inside is the host's root.

    The kernel's sysctl permission check for most global tables (``test_perm``) compares the
    writer's euid with the host's uid 0 and checks no capability: a user namespace that maps
    its root to host uid 0 (``unshare -U -r`` run by root) writes ``vm.max_map_count`` through
    a read-write ``/proc/sys`` as the host's root does (measured on 6.18,
    tests/reliability/test_proc_sys_rw.py). Read from the host's /proc: the map shows host ids.
    """
    for name in ("uid_map", "gid_map"):
        path = "%s/%s" % (base, name)
        try:
            out[name] = parse_id_map(_read_text(path))
        except OSError as exc:
            out["errors"].append({"stage": "privileges", "message": _describe(exc, path)})
    if out["uid_map"] is not None:
        out["root_is_host_root"] = maps_to_host(out["uid_map"], 0) == 0


def process_roots(proc="/proc"):
    # type: (str) -> list
    """Root directories, as the host names them, of processes that do not run at the host's
    root: chrooted containers' root filesystems. (A container with a mount namespace of its
    own shows "/" here; its filesystem lies under the runtime's directories.)"""
    roots = set()
    try:
        names = os.listdir(proc)
    except OSError:
        return []
    for name in names:
        if name.isdigit():
            try:
                root = os.readlink("%s/%s/root" % (proc, name))
            except OSError:
                continue
            if root not in ("/", "") and root.startswith("/") and not root.endswith(" (deleted)"):
                roots.add(root)
    return sorted(roots)


def _describe(exc, path):
    # type: (OSError, str) -> str
    if exc.errno in (errno.ENOENT, errno.ESRCH):
        return "%s: the process exited" % path
    return "%s: %s" % (path, exc.strerror or exc)
