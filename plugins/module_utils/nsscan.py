# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Find the distinct namespace sets among running processes and named network namespaces.

A *namespace set* is the tuple of a process's net, ipc, uts, user and pid namespaces. Every set
that differs from the host's in one of them is a place where sysctls may read differently: a
container, a pod sandbox, an ``ip netns exec`` shell, a browser sandbox. Network namespaces kept
alive only by a bind mount (``ip netns add``, ``/run/docker/netns``) are sets too, without
processes. Target side: standard library only, Python >= 3.8.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

COMPARED_TYPES = ("net", "ipc", "uts", "user", "pid")
RECORDED_TYPES = ("net", "ipc", "uts", "user", "pid", "mnt", "cgroup")
NAMED_NETNS_DIRS = ("/run/netns", "/var/run/netns")


def parse_ns_link(target):
    # type: (str) -> int
    """``net:[4026531840]`` -> 4026531840."""
    start = target.index("[") + 1
    return int(target[start:target.index("]", start)])


def read_ns(pid, proc="/proc", types=RECORDED_TYPES):
    # type: (object, str, tuple) -> dict
    """``{type: inode}`` of one process; raises OSError when it vanished or is not readable."""
    base = "%s/%s/ns/" % (proc, pid)
    return {t: parse_ns_link(os.readlink(base + t)) for t in types}


def parse_stat(text):
    # type: (str) -> dict
    """Fields of ``/proc/PID/stat`` we use; ``comm`` may hold spaces and parentheses."""
    close = text.rindex(")")
    comm = text[text.index("(") + 1:close]
    fields = text[close + 2:].split()
    # fields[0] is state (field 3); ppid is field 4, starttime field 22.
    return {"comm": comm, "state": fields[0], "ppid": int(fields[1]), "starttime": int(fields[19])}


def read_stat(pid, proc="/proc"):
    # type: (int, str) -> dict
    """Read as bytes: ``comm`` is whatever the process named itself (any byte but NUL), and a
    decoding error here used to drop the process, and a one-process container with it."""
    with open("%s/%d/stat" % (proc, pid), "rb") as handle:
        return parse_stat(handle.read().decode("utf-8", "backslashreplace"))


def read_cmdline(pid, proc="/proc", limit=512):
    # type: (int, str, int) -> str
    """The command line as one string (NULs as spaces), cut at ``limit`` characters."""
    with open("%s/%d/cmdline" % (proc, pid), "rb") as handle:
        raw = handle.read(limit * 4)
    text = raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "backslashreplace")
    return text[:limit]


def parse_mountinfo_nsfs(text):
    # type: (str) -> dict
    """``{(nstype, inode): [mount points]}`` for nsfs bind mounts in a mountinfo text."""
    out = {}
    for line in text.split("\n"):
        parts = line.split(" - ", 1)
        if len(parts) != 2:
            continue
        # The kernel separates fields with one space and escapes blanks inside them; str.split()
        # would also split at \x1c-\x1f, \x85 and other characters a mount point may hold.
        left = [f for f in parts[0].split(" ") if f]
        right = [f for f in parts[1].split(" ") if f]
        if not right or right[0] != "nsfs" or len(left) < 5:
            continue
        root, mount_point = left[3], _unescape(left[4])
        if ":[" not in root:
            continue
        nstype = root.split(":", 1)[0]
        try:
            inode = parse_ns_link(root)
        except ValueError:
            continue
        out.setdefault((nstype, inode), []).append(mount_point)
    return out


def _unescape(field):
    # type: (str) -> str
    """mountinfo escapes space, tab, newline and backslash as octal."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and len(field[i + 1:i + 4]) == 3 and all(c in "01234567" for c in field[i + 1:i + 4]):
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def nsfs_mounts(proc="/proc"):
    # type: (str) -> dict
    """nsfs bind mounts as the module's own mount namespace sees them."""
    try:
        with open("%s/self/mountinfo" % proc, "rb") as handle:
            raw = handle.read()
    except OSError:
        return {}
    # Mount points are paths of any bytes; surrogateescape keeps them openable.
    return parse_mountinfo_nsfs(raw.decode("utf-8", "surrogateescape"))


def named_netns(mounts, dirs=NAMED_NETNS_DIRS):
    # type: (dict, tuple) -> dict
    """``{net inode: [names]}`` of ``ip netns`` names among nsfs mounts."""
    out = {}
    prefixes = tuple(d.rstrip("/") + "/" for d in dirs)
    for (nstype, inode), points in mounts.items():
        if nstype != "net":
            continue
        for point in points:
            if point.startswith(prefixes):
                name = point.rsplit("/", 1)[1]
                if name not in out.setdefault(inode, []):
                    out[inode].append(name)
    return out


def set_id(ns, host_ns):
    # type: (dict, dict) -> str
    """A stable, readable id: the compared namespaces, ``host`` where shared."""
    return "/".join("%s:%s" % (t, "host" if ns.get(t) == host_ns.get(t) else ns.get(t)) for t in COMPARED_TYPES)


def scan(host_ns, proc="/proc", max_pids=20, own_pids=()):
    # type: (dict, str, int, tuple) -> tuple
    """Group processes by namespace set. Returns ``(sets, errors)``.

    ``sets`` holds every set that differs from ``host_ns`` in a compared type, sorted by id;
    each with ``ns``, ``differs_from_host``, ``shares_host``, ``pids`` (capped at ``max_pids``),
    ``pid_count``, ``representative_pid`` and ``init``. Processes that vanish while we look are
    skipped; processes whose namespaces cannot be read are counted in ``errors``.
    """
    groups = {}
    denied = []
    skip = set(own_pids)
    for name in os.listdir(proc):
        if not name.isdigit():
            continue
        pid = int(name)
        if pid in skip:
            continue
        try:
            ns = read_ns(pid, proc)
        except FileNotFoundError:
            continue  # exited between listing and reading
        except OSError as exc:
            if exc.errno in (2, 3):  # ENOENT, ESRCH
                continue
            denied.append(pid)
            continue
        key = tuple(ns[t] for t in COMPARED_TYPES)
        if all(ns[t] == host_ns.get(t) for t in COMPARED_TYPES):
            continue
        group = groups.setdefault(key, {"ns": ns, "pids": []})
        group["pids"].append(pid)
    errors = []
    if denied:
        errors.append({"stage": "scan", "message": "namespaces of %d process(es) could not be read "
                       "(permission denied), e.g. pid %s" % (len(denied), ", ".join(map(str, denied[:5])))})
    sets = []
    for group in groups.values():
        described = describe_set(group["ns"], group["pids"], host_ns, proc, max_pids)
        if described is not None:
            sets.append(described)
    sets.sort(key=lambda s: s["id"])
    return sets, errors


def describe_set(ns, pids, host_ns, proc="/proc", max_pids=20):
    # type: (dict, list, dict, str, int) -> dict
    """Members, the representative (the set's init: oldest member whose parent is outside)."""
    stats = {}
    for pid in pids:
        try:
            stats[pid] = read_stat(pid, proc)
        except (OSError, ValueError, IndexError):
            continue
    if not stats:
        return None  # every member exited meanwhile
    roots = [p for p, st in stats.items() if st["ppid"] not in stats] or list(stats)
    rep = min(roots, key=lambda p: (stats[p]["starttime"], p))
    try:
        cmdline = read_cmdline(rep, proc)
    except OSError:
        cmdline = ""
    members = sorted(stats)
    return {
        "id": set_id(ns, host_ns),
        "ns": dict(ns),
        "differs_from_host": [t for t in COMPARED_TYPES if ns.get(t) != host_ns.get(t)],
        "shares_host": [t for t in RECORDED_TYPES if ns.get(t) == host_ns.get(t)],
        "pids": members[:max_pids],
        "pid_count": len(members),
        "representative_pid": rep,
        "init": {"pid": rep, "comm": stats[rep]["comm"], "ppid": stats[rep]["ppid"], "cmdline": cmdline},
        "ns_paths": {t: "%s/%d/ns/%s" % (proc, rep, t) for t in COMPARED_TYPES if ns.get(t) != host_ns.get(t)},
    }


def live_member(ns_set, proc="/proc"):
    # type: (dict, str) -> object
    """A listed member that still lives in the set's namespaces, or None (zombies do not:
    their namespace links are gone, and a reused pid shows other namespaces)."""
    for pid in ns_set.get("pids") or ():
        try:
            ns = read_ns(pid, proc, COMPARED_TYPES)
        except (OSError, ValueError):
            continue
        if all(ns[t] == ns_set["ns"].get(t) for t in COMPARED_TYPES):
            return pid
    return None


def still_alive(ns_set, proc="/proc"):
    # type: (dict, str) -> bool
    """Whether any listed member still lives in the set's namespaces. A member whose
    namespaces we may no longer read (EACCES) counts as alive: it did not exit."""
    if not ns_set.get("pids"):
        return True  # a bind-mounted netns has no members to lose
    if live_member(ns_set, proc) is not None:
        return True
    for pid in ns_set["pids"]:
        try:
            read_ns(pid, proc, COMPARED_TYPES)
        except OSError as exc:
            if exc.errno in (1, 13):  # EPERM, EACCES
                return True
        except ValueError:
            continue
    return False


def netns_only_sets(named, mounts, sets, host_ns):
    # type: (dict, dict, list, dict) -> list
    """Sets for bind-mounted network namespaces that no process lives in."""
    seen = set(s["ns"]["net"] for s in sets)
    out = []
    for (nstype, inode), points in sorted(mounts.items()):
        if nstype != "net" or inode in seen or inode == host_ns.get("net"):
            continue
        seen.add(inode)
        ns = dict(host_ns)
        ns["net"] = inode
        out.append({
            "id": set_id(ns, host_ns),
            "ns": ns,
            "differs_from_host": ["net"],
            "shares_host": [t for t in RECORDED_TYPES if t != "net"],
            "pids": [],
            "pid_count": 0,
            "representative_pid": None,
            "init": None,
            "ns_paths": {"net": sorted(points)[0]},
            "netns_names": named.get(inode, []),
        })
    return out
