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

from ansible_collections.nsguard.sysctl.plugins.module_utils import procinfo
from ansible_collections.nsguard.sysctl.plugins.module_utils.probe_facts import PROBE_TYPES

# A set is compared with the host on the types whose sysctls a namespace can own: the types the
# probe makes throwaway namespaces of.
COMPARED_TYPES = PROBE_TYPES
# The name every process the facts module forks gives itself (nsenter.name_worker): the probe's
# throwaway namespaces and the readers that enter sets. The scan leaves out its own module's
# such processes, and those of another gather running at the same time (two audits of a host,
# an inventory holding several aliases of one machine), which would otherwise be containers.
WORKER_COMM = "nsguard-sysctl"
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


def _same_file(path_a, path_b):
    # type: (str, str) -> bool
    try:
        a, b = os.stat(path_a), os.stat(path_b)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def gather_worker_of(pid, stat, host_ns, proc="/proc", depth=3):
    # type: (int, dict, dict, str, int) -> object
    """The pid of the facts module that forked ``pid`` (its probe's or readers' process), or None.

    Every such process calls itself :data:`WORKER_COMM`. This module's own are known by their
    parent. Another module's are taken only on proof no tenant can forge: the process runs the same
    interpreter file as this module, and belongs to root of the initial user namespace, and so do
    its ancestors up to one (at most ``depth`` up) that is root, in every namespace of the host,
    and runs that interpreter: a facts module. A container's process has the container's
    runtime (a shim, conmon, lxc-start) or its own init above it, never such a process; an
    unprivileged user's look-alike is not root outside its user namespace.
    """
    self_pid = os.getpid()
    chain, chain_stats, current_stat = [pid], [stat], stat
    for dummy in range(depth):
        if current_stat["comm"] != WORKER_COMM:
            return None
        parent = current_stat["ppid"]
        if parent == self_pid:
            return self_pid  # ours, even exited (a zombie keeps its name but has no exe to compare)
        try:
            parent_stat = read_stat(parent, proc)
        except (OSError, ValueError, IndexError):
            return None
        if parent_stat["comm"] == WORKER_COMM:
            chain.append(parent)  # a worker's own child (the pid probe's grandchild)
            chain_stats.append(parent_stat)
            current_stat = parent_stat
            continue
        # A zombie (the pid probe's grandchild, exited, not reaped yet) has no exe left to
        # compare: its parent's proof stands for it.
        proven = [p for p, st in zip(chain, chain_stats) if st["state"] != "Z"] + [parent]
        if not all(_root_same_interpreter(p, proc) for p in proven):
            return None
        try:
            parent_ns = read_ns(parent, proc)
        except OSError:
            return None
        return parent if all(parent_ns.get(t) == host_ns.get(t) for t in COMPARED_TYPES) else None
    return None


def _gone_or_zombie(pid, proc):
    # type: (int, str) -> bool
    """The process has exited or is exiting: no entry, a zombie, or no executable any more (a
    task drops its memory, and its ``exe`` link with it, before it turns zombie; a live user
    process always has one). No member of any set, whatever its name."""
    try:
        if read_stat(pid, proc)["state"] in ("Z", "X"):
            return True
        os.stat("%s/%d/exe" % (proc, pid))
    except (OSError, ValueError, IndexError):
        return True
    return False


def _root_same_interpreter(pid, proc):
    # type: (int, str) -> bool
    """Real and effective uid 0 as this (the initial) user namespace sees them -- ``status``, not
    the owner of ``/proc/PID``, which any process makes root by turning itself non-dumpable --
    and the same executable file as this process."""
    try:
        with open("%s/%d/status" % (proc, pid), "rb") as handle:
            uid = procinfo.parse_status(handle.read().decode("utf-8", "backslashreplace")).get("Uid", "")
    except OSError:
        return False
    if procinfo.int_field(uid, 0) != 0 or procinfo.int_field(uid, 1) != 0:  # real, effective
        return False
    return _same_file("%s/%d/exe" % (proc, pid), "/proc/self/exe")


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
    self_pid = os.getpid()
    stats = {}  # pid -> read_stat, of every process in a set (describe_set reads them again)
    others = []  # pids of another gather's workers
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
        try:
            stats[pid] = read_stat(pid, proc)
        except (OSError, ValueError, IndexError):
            continue  # exited meanwhile
        owner = gather_worker_of(pid, stats[pid], host_ns, proc)
        if owner is not None:
            if owner != self_pid:
                others.append(pid)
            continue
        if stats[pid]["comm"] == WORKER_COMM and _gone_or_zombie(pid, proc):
            continue  # a gather's worker that exited while its proof was read (it lives ~20 ms)
        group = groups.setdefault(key, {"ns": ns, "pids": []})
        group["pids"].append(pid)
    errors = []
    if denied:
        errors.append({"stage": "scan", "message": "namespaces of %d process(es) could not be read "
                       "(permission denied), e.g. pid %s" % (len(denied), ", ".join(map(str, denied[:5])))})
    if others:
        errors.append({"stage": "scan", "message": "%d process(es) of another nsguard.sysctl gather running at the "
                       "same time (its probe's throwaway namespaces and its readers), e.g. pid %s, are not "
                       "namespace sets of this host and were left out" % (len(others), ", ".join(map(str, others[:5])))})
    sets = []
    for group in groups.values():
        described = describe_set(group["ns"], group["pids"], host_ns, proc, max_pids, stats)
        if described is not None:
            sets.append(described)
    sets.sort(key=lambda s: s["id"])
    return sets, errors


def describe_set(ns, pids, host_ns, proc="/proc", max_pids=20, known_stats=None):
    # type: (dict, list, dict, str, int, dict) -> dict
    """Members, the representative (the set's init: oldest member whose parent is outside).
    ``known_stats``: ``read_stat`` of members already read (the scan's)."""
    stats = {}
    for pid in pids:
        if known_stats and pid in known_stats:
            stats[pid] = known_stats[pid]
            continue
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
