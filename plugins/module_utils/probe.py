# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A non-destructive probe: what a fresh namespace of each type does to every sysctl.

For each namespace type (net, ipc, uts, user, pid) a forked reader unshares a throwaway
namespace of that type alone and reads every key of the host through the host's procfs, with
a ``stat`` only where the listing shows another inode than the host's (the pid namespace's
reader through a further fork: only a process created after the unshare lives in it).
Compared with the host's read just before, which each reader inherits through ``fork``, this
shows, per key:

- absent in a fresh namespace (registered on the initial namespace only: host-only);
- a different mode there (a read-only mirror of a global value);
- a different table entry (inode, or a mode only another entry can have): the key belongs to
  that namespace type (``owner``);
- a different value, per namespace type (``value_differs``). A value that differs through the
  same table entry is reported only there: one entry whose handler reads the caller's namespace
  (``kernel.cad_pid`` in a fresh pid namespace) or translates the value for the reader
  (``net.ipv4.ping_group_range`` in a fresh user namespace) is not owned by that type.

A reader sends back only what it saw otherwise than the host (:func:`differences`: a few
entries of ~1,300, most of them the net type's), so the evidence is exactly that of a comparison
of whole snapshots. After the readers, the host's directory listings are read again: a key whose
host inode changed meanwhile (dentry cache eviction) is ``unknown``, not evidence.

It writes nothing: no sysctl, no uid map, no hostname. The readers are one per CPU (at most one
per type), reused as :func:`nsenter.run_parallel`'s workers are: after a type's read a reader
goes back to its own namespaces (``setns``), which leaves the throwaway namespace without a
process or a reference, so it dies then; the user namespace's reader, which cannot go back,
exits after it (its job is handed out last). Each type's read has ``timeout`` seconds, then its
reader is killed; a type not started within ``timeout`` of the probe's start is reported, not
started, so the probe ends within twice ``timeout``. Target side: standard library only,
Python >= 3.8.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.nsguard.sysctl.plugins.module_utils import nsenter, procsys
# The reader of what the probe returns lives beside it, importable without this module's forks.
from ansible_collections.nsguard.sysctl.plugins.module_utils.probe_facts import (  # noqa: F401
    PROBE_TYPES, ProbeIndex, probe_evidence, value_differs_by_type, value_differs_keys)


def differences(host, keys, unreadable, absent=None):
    # type: (dict, dict, dict, list) -> dict
    """What a throwaway namespace's read (``keys, unreadable`` of ``read_tree(with_inodes=True)``)
    shows otherwise than ``host`` does, for the keys of ``host`` only (the comparison looks at no
    other): ``{"absent": [key, ...], "differs": {key: [mode, ino, value or None]}}``.

    ``absent`` is given when the read left out keys it saw as ``host`` does
    (:func:`procsys.read_tree_changes`): then a key missing from ``keys`` and ``unreadable`` is
    not absent for that alone.

    A key of ``host`` listed in neither is seen exactly as the host sees it: the same mode, the
    same inode and the same value (or no value on both sides). So the throwaway namespace's
    whole view is ``host`` with these changes (all that :func:`compare` needs), and a reader
    sends a few entries instead of ~1,300.
    """
    differs = {}
    for key, item in keys.items():
        own = host.get(key)
        if own is not None and (item["ino"] != own.get("ino") or item["mode"] != own["mode"]
                                or item["value"] != own.get("value")):
            differs[key] = [item["mode"], item["ino"], item["value"]]
    for key, item in unreadable.items():
        own = host.get(key)
        if own is not None and (item.get("ino") != own.get("ino") or item["mode"] != own["mode"]
                                or own.get("value") is not None):
            differs[key] = [item["mode"], item.get("ino"), None]
    if absent is None:
        absent = [key for key in host if key not in keys and key not in unreadable]
    return {"absent": list(absent), "differs": differs}


def _read_differences(root, host):
    # type: (str, dict) -> dict
    """This process's view of every key of ``host``, as :func:`differences` (keys ``host`` lacks
    are not read: the comparison iterates the host's keys only; keys seen through the host's
    own inode with the host's value are read but not kept)."""
    return differences(host, *procsys.read_tree_changes(root, host))


def _probe_target(nstype, root, host):
    # type: (str, str, dict) -> callable
    def target():
        nsenter.unshare(nsenter.NS_FLAGS[nstype])
        if nstype == "pid":
            # Only a process created after unshare(CLONE_NEWPID) lives in the new namespace.
            return nsenter.run_in_grandchild(lambda: _read_differences(root, host))
        return _read_differences(root, host)
    return target


def compare(host, host_inodes, seen):
    # type: (dict, dict, dict) -> dict
    """Pure comparison of a host snapshot with the throwaway namespaces' :func:`differences`.

    ``host[key] = {"value", "mode", "ino"}`` (unreadable keys may lack ``value``),
    ``host_inodes[key]`` the key's inode when the host was looked at again after the
    throwaway namespaces were read (:func:`procsys.tree_inodes`), ``seen[nstype]`` the
    ``{"absent", "differs"}`` of that type's throwaway namespace. A key of ``host`` that
    ``seen[nstype]`` does not list is seen there as the host sees it: no evidence.
    """
    absent = set()
    mode_differs = {}
    value_differs = {}
    owner = {}
    stable = {}  # key -> the host inode, for keys whose inode did not change meanwhile
    unknown = []
    for key, h in host.items():
        ino = h.get("ino")
        if key in host_inodes and host_inodes[key] == ino:
            stable[key] = ino
        else:
            unknown.append(key)
    # One pass per type, in PROBE_TYPES order: the first type to show another mode or its own
    # entry is the one recorded, as in a pass per key over the types.
    for nstype in PROBE_TYPES:
        view = seen.get(nstype)
        if view is None:
            continue
        absent.update(view["absent"])
        for key, (mode, ino, value) in view["differs"].items():
            h = host[key]
            host_value = h.get("value")
            if mode == h["mode"] and ino == h.get("ino") and (value is None or value == host_value):
                continue  # the host's entry and mode, unreadable here: no evidence
            other_mode = mode != h["mode"]
            if other_mode and key not in mode_differs:
                mode_differs[key] = mode
            # A mode is a property of the table entry: another mode is another entry even when
            # the inode comparison is not reliable. A value alone proves nothing about ownership.
            own_entry = (key in stable and ino != stable[key]) or other_mode
            if (value is not None and host_value is not None and value != host_value
                    and key not in procsys.VOLATILE_KEYS):
                value_differs.setdefault(nstype, set()).add(key)
            if own_entry and key not in owner:
                owner[key] = nstype
    by_type = {}
    for key, nstype in sorted(owner.items()):
        by_type.setdefault(nstype, []).append(key)
    return {
        "absent": sorted(absent),
        "mode_differs": dict(sorted(mode_differs.items())),
        "value_differs": dict((t, sorted(keys)) for t, keys in sorted(value_differs.items())),
        "owner": by_type,
        "unknown": sorted(k for k in unknown if k not in absent),
    }


def run_probe(host, root=procsys.PROC_SYS, types=PROBE_TYPES, parallel=2, timeout=10.0):
    # type: (dict, str, tuple, int, float) -> dict
    """Probe every key of ``host`` (``{key: {"value", "mode", "ino"}}``) in throwaway namespaces.

    ``host`` is the caller's read of the host just before (``procsys.read_tree(with_inodes=True)``,
    readable and unreadable keys in one mapping). The probe looks at the host again after the
    throwaway namespaces were read, so keys whose host inode changed meanwhile (dentry cache
    eviction) are reported as ``unknown`` instead of as evidence.
    """
    return start_probe(host, root, types, parallel, timeout).finish()


def start_probe(host, root=procsys.PROC_SYS, types=PROBE_TYPES, parallel=2, timeout=10.0):
    # type: (dict, str, tuple, int, float) -> Probe
    """Fork the probe's readers now, after the host read; ``.finish()`` collects and compares.

    Each reader inherits ``host`` through ``fork``, compares its throwaway namespace's view with
    it and sends back only what differs (:func:`differences`). The caller does its other work
    (sysctl.d files, the scan of ``/proc``) while they read.
    """
    return Probe(host, root, types, parallel, timeout)


def _job_order(types):
    # type: (tuple) -> list
    """The readers' jobs, the user namespace's last: a reader goes back to its own namespaces
    after each job and takes the next, except after a user namespace (no way back), so with
    it last every other job can run in a reader that did one before (fewer forks)."""
    return sorted(types, key=lambda nstype: nstype == "user")


class Probe:
    """A started probe (:func:`start_probe`)."""

    def __init__(self, host, root, types, parallel, timeout):
        self.host, self.root, self.types, self.timeout = host, root, tuple(types), timeout
        self.started = time.monotonic()
        self._run = nsenter.start_parallel(
            [nsenter.Job(t, _probe_target(t, root, host)) for t in _job_order(self.types)],
            parallel=parallel, timeout=timeout, deadline=self.started + timeout)

    def abandon(self):
        # type: () -> None
        """Stop the throwaway namespaces' readers without a result (the caller failed)."""
        self._run.close()

    def finish(self):
        # type: () -> dict
        answers = self._run.wait()
        host_inodes = procsys.tree_inodes(self.root)
        seen = {}
        errors = []
        for nstype in self.types:
            answer = answers.get(nstype, {})
            if answer.get("ok"):
                seen[nstype] = answer["value"]
            else:
                why = ("not started within the probe's %.3g s" % self.timeout if answer.get("stage") == "schedule"
                       else answer.get("error", "no answer"))
                errors.append({"stage": "probe", "namespace": nstype,
                               "message": "throwaway %s namespace: %s" % (nstype, why)})
        result = compare(self.host, host_inodes, seen)
        result.update({
            "enabled": True,
            "namespaces": [t for t in self.types if t in seen],
            "key_count": len(self.host),
            "errors": errors,
            "duration_ms": int((time.monotonic() - self.started) * 1000),
        })
        return result
