# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A namespace set's own view of ``/proc/sys``, read in a forked child, and its diff to the host.

Only what can differ is read: the whole ``net`` subtree when the set has its own network
namespace, and the keys the probe found owned by the set's other namespace types (ipc, user,
pid; uts keys by name). With ``view=full`` every key is read. The child compares against the
host's keys it inherited through ``fork`` and sends back only the diff, so a fleet's facts stay
small. Target side: standard library only, Python >= 3.8.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.nsguard.sysctl.plugins.module_utils import nsenter, procsys, sysctl_names

# The UTS namespace's keys share one sysctl table with the host (same inode, and a fresh UTS
# namespace copies the host's names), so the probe cannot attribute them; they are read by name.
UTS_KEYS = ("kernel.hostname", "kernel.domainname")
# Keys that only a pid namespace changes; read when the set has its own pid namespace.
PID_KEYS_FALLBACK = ("kernel.pid_max", "kernel.ns_last_pid")
# Without the probe, the namespace types' keys by prefix (the kernel's own registrations).
FALLBACK_PREFIXES = {
    "ipc": ("kernel.shm", "kernel.msg", "kernel.sem", "kernel.auto_msgmni", "fs.mqueue."),
    "user": ("user.",),
    "pid": PID_KEYS_FALLBACK,
}
_IFACE_KEY = re.compile(r"^net\.(ipv4|ipv6|mpls)\.(conf|neigh)\.([^.]+)\.")
_IFACE_PREFIXES = ("net.ipv4.", "net.ipv6.", "net.mpls.")  # every key _IFACE_KEY can match


def interface_of(key):
    # type: (str) -> str
    """The network device a per-device key belongs to (``eth0``), or None (``all``/``default``)."""
    match = _IFACE_KEY.match(key)
    if not match or match.group(3) in ("all", "default"):
        return None
    return match.group(3)


def interfaces_in(keys):
    # type: (object) -> set
    """The network devices that per-device keys among ``keys`` name (:func:`interface_of` of
    each, in one loop: it runs over every key of each set's ``net`` tree)."""
    match = _IFACE_KEY.match
    found = set()
    for key in keys:
        if key.startswith(_IFACE_PREFIXES):  # only these can name a device: no regex for the rest
            hit = match(key)
            if hit:
                found.add(hit.group(3))
    found.discard("all")
    found.discard("default")
    return found


def plan_keys(differs, host_keys, probe_owner, full=False):
    # type: (list, dict, dict, bool) -> dict
    """What to read in a set.

    ``{"subdirs": [...], "names": [...], "pid_names": [...], "scope": set of host keys}``:
    ``pid_names`` are the keys of the set's own pid namespace, which only a process created
    inside it sees. ``differs``: the set's namespace types that differ from the host's.
    ``probe_owner``: the probe's ``owner`` mapping (type -> keys), or None when the probe did
    not run.
    """
    if full:
        return {"subdirs": [""], "names": [], "pid_names": [], "scope": None}
    subdirs = ["net"] if "net" in differs else []
    names = []
    pid_names = []
    for nstype in differs:
        if nstype == "net":
            continue
        if nstype == "uts":
            names.extend(UTS_KEYS)
            continue
        if probe_owner is not None:
            owned = probe_owner.get(nstype, ())
        else:
            prefixes = FALLBACK_PREFIXES.get(nstype, ())
            owned = [k for k in host_keys if k.startswith(prefixes)]
        (pid_names if nstype == "pid" else names).extend(owned)

    def clean(keys):
        return sorted(set(n for n in keys if not n.startswith("net.") or "net" not in differs))

    pid_names = clean(pid_names)
    pid_set = set(pid_names)
    names = [n for n in clean(names) if n not in pid_set]
    scope = set(names) | pid_set
    if subdirs:
        scope.update(k for k in host_keys if k.startswith("net."))
    return {"subdirs": subdirs, "names": names, "pid_names": pid_names, "scope": scope}


def read_pid_keys(names, root=procsys.PROC_SYS):
    # type: (list, str) -> tuple
    """Read keys of an entered pid namespace: ``(keys, unreadable)`` as a new process there sees them.

    A spawned host ``cat`` answers in the common case; anything unusual (an unreadable key, a
    value over several lines, no usable ``cat``) goes to a forked reader, which reports each
    key's own error.
    """
    found = []
    for key in names:
        try:
            found.append((key, procsys.mode_string(os.stat(procsys.key_to_path(key, root)).st_mode)))
        except OSError:
            continue  # absent: the diff counts it
    lines = nsenter.read_files_as_new_process([procsys.key_to_path(k, root) for k, _mode in found]) if found else []
    if lines is not None:
        return {k: {"value": procsys.format_value(line), "mode": mode}
                for (k, mode), line in zip(found, lines)}, {}
    keys, unreadable = nsenter.run_in_grandchild(lambda: procsys.read_keys(names, root)[:2])
    return keys, unreadable


def read_view(plan, wanted=None, root=procsys.PROC_SYS, own_pid_ns=False, tree_cache=None):
    # type: (dict, callable, str, bool, dict) -> tuple
    """Read the planned keys in the current namespaces: ``(keys, unreadable)``.

    ``own_pid_ns``: the process entered the set's pid namespace (``setns``), so its pid keys
    must be read by a new process. ``tree_cache``: the subtrees read for an earlier set in the
    same network namespace (see :func:`make_group_reader`); filled on first use.
    """
    keys, unreadable = {}, {}
    if plan["subdirs"]:
        cache_key = tuple(plan["subdirs"])
        if tree_cache is not None and cache_key in tree_cache:
            keys, unreadable = (dict(part) for part in tree_cache[cache_key])  # shared: add to a copy
        else:
            keys, unreadable = procsys.read_tree(root, wanted=wanted, subdirs=plan["subdirs"])
            if tree_cache is not None:
                tree_cache[cache_key] = (dict(keys), dict(unreadable))
    if plan["names"]:
        more, more_unreadable, _absent = procsys.read_keys(plan["names"], root)
        keys.update(more)
        unreadable.update(more_unreadable)
    if plan.get("pid_names"):
        if own_pid_ns:
            more, more_unreadable = read_pid_keys(plan["pid_names"], root)
        else:
            more, more_unreadable, _absent = procsys.read_keys(plan["pid_names"], root)
        keys.update(more)
        unreadable.update(more_unreadable)
    return keys, unreadable


def diff_view(keys, unreadable, host_keys, host_unreadable, scope, probe=None, requested=None, full=False):
    # type: (dict, dict, dict, dict, object, dict, dict, bool) -> dict
    """Compare a set's keys with the host's (pure; see docs/facts.md ``view``).

    What every fresh namespace shows anyway (the probe's absent keys and read-only mirrors) is
    counted but not listed per set: it is in the probe facts once per host, and listing it for
    each of a hundred containers would make a fleet's facts ten times larger.
    """
    probe = probe if probe and probe.get("enabled") else {}
    fresh_modes = probe.get("mode_differs") or {}
    if scope is None:
        scope = set(host_keys) | set(host_unreadable)
    present = set(keys) | set(unreadable)
    iface_set = interfaces_in(present)
    interfaces = sorted(iface_set)
    absent_all = [k for k in scope if k not in present and (k in host_keys or k in host_unreadable)]
    probe_absent = set(probe.get("absent") or ())
    absent = []
    for key in absent_all:
        if key in probe_absent:
            continue
        device = interface_of(key)
        if device is None or device in iface_set:
            absent.append(key)
    absent.sort()
    mode_differs = {}
    mode_differs_count = 0
    differs = {}
    for key, item in keys.items():
        host = host_keys.get(key) or host_unreadable.get(key)
        if host is None:
            continue
        if host["mode"] != item["mode"]:
            mode_differs_count += 1
            if fresh_modes.get(key) != item["mode"]:
                mode_differs[key] = {"host": host["mode"], "container": item["mode"]}
        if ("value" in host and host["value"] != item["value"] and key not in procsys.VOLATILE_KEYS):
            differs[key] = {"host": host["value"], "container": item["value"]}
    requested_values = {}
    for key in (requested or {}):
        name = sysctl_names.normalize_key(key)  # runtimes may write net/ipv4/ip_forward
        if name in keys:
            requested_values[key] = keys[name]["value"]
        elif name in unreadable:
            requested_values[key] = None
    view = {
        "mode": "full" if full else "diff",
        "key_count": len(present),
        "absent": absent,
        "absent_count": len(absent_all),
        "extra_count": len([k for k in present if k not in host_keys and k not in host_unreadable]),
        "interfaces": interfaces,
        "mode_differs": dict(sorted(mode_differs.items())),
        "mode_differs_count": mode_differs_count,
        "differs": dict(sorted(differs.items())),
        "requested_values": requested_values,
        "unreadable": {k: v for k, v in sorted(unreadable.items()) if k not in host_unreadable},
    }
    if full:
        view.update(procsys.key_tables(keys))  # the host's shape (docs/facts.md, schema_version 3)
    return view


def conntrack_count(keys):
    # type: (dict) -> object
    item = keys.get("net.netfilter.nf_conntrack_count")
    try:
        return int(item["value"]) if item else None
    except ValueError:
        return None


def make_reader(ns_set, host_keys, host_unreadable, plan, probe, wanted, full, root=procsys.PROC_SYS,
                tree_cache=None):
    # type: (dict, dict, dict, dict, object, callable, bool, str, dict) -> callable
    """The function a forked child runs for one set: open, verify, enter, read, diff.

    ``tree_cache`` is shared by the readers of one group (:func:`make_group_reader`).
    """
    paths = dict(ns_set["ns_paths"])
    expected = {t: ns_set["ns"][t] for t in paths}
    requested = ns_set.get("requested") or {}

    def read_and_diff(own_pid_ns=False):
        keys, unreadable = read_view(plan, wanted, root, own_pid_ns, tree_cache)
        view = diff_view(keys, unreadable, host_keys, host_unreadable, plan["scope"],
                         probe, requested, full)
        return {"view": view, "conntrack_count": conntrack_count(keys)}

    def target():
        fds = nsenter.open_namespaces(paths)
        try:
            for nstype, fd in fds.items():
                # The pid may have been reused since the scan: the namespace must be the one seen.
                if os.fstat(fd).st_ino != expected[nstype]:
                    raise nsenter.NamespaceError(
                        "%s namespace of the set changed since the scan (process exited, pid reused?)" % nstype)
            nsenter.enter_namespaces(fds)
        finally:
            for fd in fds.values():
                os.close(fd)
        if "pid" in paths and "" in plan["subdirs"]:
            # Only a process created after setns(pid) sees kernel.pid_max of the namespace. The
            # full view walks every directory, kernel/ included: all of it in a forked reader.
            return nsenter.run_in_grandchild(read_and_diff)
        return read_and_diff(own_pid_ns="pid" in paths)

    return target


def group_key(ns_set, full=False):
    # type: (dict, bool) -> str
    """Sets with the same key are read by one job: those sharing a network namespace.

    A Kubernetes pod's containers share the pause container's network namespace (each has its
    own pid namespace, so each is a set of its own): its ~600 ``net`` keys are read once for all.
    A set with its own user namespace stays alone, since a reader cannot come back from it, and
    so does every set of the full view, which reads everything per set anyway.
    """
    if full or "net" not in ns_set["differs_from_host"] or "user" in ns_set["differs_from_host"]:
        return "set:%s" % ns_set["id"]
    return "net:%s" % ns_set["ns"]["net"]


def make_group_reader(members):
    # type: (list) -> callable
    """One job for ``[(set_id, reader), ...]`` made with one shared ``tree_cache``.

    Each member is entered, read and left in turn (back to the namespaces the job started in);
    the answer is ``{set_id: answer}``, one answer document per member, so one member that
    vanished costs only itself.
    """
    def target():
        home = nsenter.home()
        answers = {}
        for number, (set_id, reader) in enumerate(members):
            answers[set_id] = nsenter.call(reader)
            if not home.go_back():
                for later_id, _reader in members[number + 1:]:
                    answers[later_id] = {"ok": False, "stage": "enter",
                                         "error": "the reader could not return from the previous set's namespaces"}
                break
        return answers

    return target
