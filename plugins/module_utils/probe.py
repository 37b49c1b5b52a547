# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A non-destructive probe: what a fresh namespace of each type does to every sysctl.

For each namespace type (net, ipc, uts, user, pid) a forked child unshares a throwaway
namespace of that type alone and stats and reads every key through the host's procfs. Compared
with the host at the same moment this shows, per key:

- absent in a fresh namespace (registered on the initial namespace only: host-only);
- a different mode there (a read-only mirror of a global value);
- a different table entry (inode, or a mode only another entry can have): the key belongs to
  that namespace type (``owner``);
- a different value, per namespace type (``value_differs``). A value that differs through the
  same table entry is reported only there: one entry whose handler reads the caller's namespace
  (``kernel.cad_pid`` in a fresh pid namespace) or translates the value for the reader
  (``net.ipv4.ping_group_range`` in a fresh user namespace) is not owned by that type.

It writes nothing: no sysctl, no uid map, no hostname. The throwaway namespaces die with the
child. Target side: standard library only, Python >= 3.8.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.nsguard.sysctl.plugins.module_utils import nsenter, procsys
# The reader of what the probe returns lives beside it, importable without this module's forks.
from ansible_collections.nsguard.sysctl.plugins.module_utils.probe_facts import (  # noqa: F401
    PROBE_TYPES, ProbeIndex, probe_evidence, value_differs_by_type, value_differs_keys)


def _snapshot(root):
    # type: (str) -> dict
    """``{key: [mode, inode, value or None]}`` as this process sees it (the host walk's reader)."""
    keys, unreadable = procsys.read_tree(root, with_inodes=True)
    out = {k: [v["mode"], v["ino"], v["value"]] for k, v in keys.items()}
    out.update((k, [v["mode"], v.get("ino"), None]) for k, v in unreadable.items())
    return out


def _probe_target(nstype, root):
    # type: (str, str) -> callable
    def target():
        nsenter.unshare(nsenter.NS_FLAGS[nstype])
        if nstype == "pid":
            # Only a process created after unshare(CLONE_NEWPID) lives in the new namespace.
            return nsenter.run_in_grandchild(lambda: _snapshot(root))
        return _snapshot(root)
    return target


def compare(host, host_after, views):
    # type: (dict, dict, dict) -> dict
    """Pure comparison of a host snapshot with the throwaway namespaces' snapshots.

    ``host[key] = {"value", "mode", "ino"}`` (unreadable keys may lack ``value``),
    ``host_after[key] = (mode, ino)``, ``views[nstype][key] = [mode, ino, value]``.
    """
    absent = set()
    mode_differs = {}
    value_differs = {}
    owner = {}
    stable = {}  # key -> the host inode, for keys whose inode did not change meanwhile
    unknown = []
    for key, h in host.items():
        after = host_after.get(key)
        if after is not None and after[1] == h.get("ino"):
            stable[key] = h.get("ino")
        else:
            unknown.append(key)
    # One pass per type, in PROBE_TYPES order: the first type to show another mode or its own
    # entry is the one recorded, as in a pass per key over the types.
    for nstype in PROBE_TYPES:
        view = views.get(nstype)
        if view is None:
            continue
        seen_in = view.get
        for key, h in host.items():
            seen = seen_in(key)
            if seen is None:
                absent.add(key)
                continue
            mode, ino, value = seen
            host_value = h.get("value")
            if mode == h["mode"] and ino == h.get("ino") and (value is None or value == host_value):
                continue  # the host's own entry, mode and value (nearly every key): no evidence
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

    The caller reads the host just before (``procsys.read_tree(with_inodes=True)``); the probe
    re-stats the host right after, so keys whose host inode changed meanwhile (dentry cache
    eviction) are reported as ``unknown`` instead of as evidence.
    """
    return start_probe(root, types, parallel, timeout).finish(host)


def start_probe(root=procsys.PROC_SYS, types=PROBE_TYPES, parallel=2, timeout=10.0):
    # type: (str, tuple, int, float) -> Probe
    """Fork the probe's throwaway namespaces now; ``.finish(host)`` collects and compares.

    The module starts it before reading the host, so that the five snapshots are taken while
    it reads (the host read may as well happen during the probe as just before it: the host
    is re-stat-ed after both, and a key whose inode changed meanwhile is ``unknown``).
    """
    return Probe(root, types, parallel, timeout)


class Probe:
    """A started probe (:func:`start_probe`)."""

    def __init__(self, root, types, parallel, timeout):
        self.root, self.types = root, tuple(types)
        self.started = time.monotonic()
        self._run = nsenter.start_parallel([nsenter.Job(t, _probe_target(t, root)) for t in self.types],
                                           parallel=parallel, timeout=timeout)

    def abandon(self):
        # type: () -> None
        """Stop the throwaway namespaces' readers without a result (the caller failed)."""
        self._run.close()

    def finish(self, host):
        # type: (dict) -> dict
        answers = self._run.wait()
        host_after = procsys.stat_keys(self.root)
        views = {}
        errors = []
        for nstype in self.types:
            answer = answers.get(nstype, {})
            if answer.get("ok"):
                views[nstype] = answer["value"]
            else:
                errors.append({"stage": "probe", "namespace": nstype,
                               "message": "throwaway %s namespace: %s" % (nstype, answer.get("error", "no answer"))})
        result = compare(host, host_after, views)
        result.update({
            "enabled": True,
            "namespaces": [t for t in self.types if t in views],
            "key_count": len(host),
            "errors": errors,
            "duration_ms": int((time.monotonic() - self.started) * 1000),
        })
        return result
