# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which record of the runtime index a namespace set is, and what the set's result says.

Evidence for a record, strongest first: the runtime's own record of a member pid, a cgroup
path of the set's init, a runtime process among its ancestors, a shared network namespace.
The strongest match wins (ties: the higher-ranked runtime); a record's fields come from its
sources, higher-ranked runtimes first. Target side: standard library only, Python >= 3.8.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.nsguard.sysctl.plugins.module_utils import nsscan, procinfo, runtime_cli
from ansible_collections.nsguard.sysctl.plugins.module_utils import runtimes_parse as rp
from ansible_collections.nsguard.sysctl.plugins.module_utils import runtime_engines

# How much a match says: the runtime's own record of the pid beats a cgroup name, which beats
# an ancestor process, which beats a shared network namespace.
EVIDENCE = {"pid": 4, "cgroup": 3, "parent": 2, "netns": 1}

IDENTITY_FIELDS = ("runtime", "id", "name", "image", "pod_name", "pod_namespace", "netns_name")
MAX_ANCESTORS = 6


class Matches(object):
    """The records a namespace set may be: key -> (evidence strength, [sources])."""

    def __init__(self):
        self.found = {}

    def note(self, key, strength, source):
        # type: (str, int, str) -> None
        best, sources = self.found.get(key, (0, []))
        if source not in sources:
            sources.append(source)
        self.found[key] = (max(best, strength), sources)


def identify(index, pids=(), init_pid=None, ns=None):
    # type: (object, object, object, object) -> dict
    """See :meth:`runtimes.RuntimeIndex.identify` (the index is scanned already)."""
    ns = ns or {}
    errors = []
    matches = Matches()
    members = [p for p in ([init_pid] if init_pid else []) + list(pids or []) if isinstance(p, int)]
    match_pids(index, members, init_pid, matches)
    for hint in _cgroup_hints(index, init_pid, errors):
        matches.note(key_for_hint(index, hint), EVIDENCE["cgroup"], "cgroup:%s" % hint["path"])
    for key, source in ancestor_matches(index, init_pid):
        matches.note(key, EVIDENCE["parent"], source)
    net = ns.get("net")
    netns_names = index._netns_names.get(net, []) if net else []
    sandbox = index._sandbox_netns.get(net) if net else None
    if sandbox:
        matches.note(sandbox, EVIDENCE["netns"], "netns:%d" % net)
    if not matches.found and index.use_cli and members and not index._lxc_info_done:
        # Last resort for LXC containers started in ways we did not see: ask lxc-info.
        if runtime_cli.lxc_info_pids(index):
            match_pids(index, members, init_pid, matches)
    result = build(index, matches.found, errors)
    if netns_names:
        identity = result["identity"]
        identity["netns_name"] = netns_names[0]
        identity["sources"].append("netns:/run/netns/%s" % netns_names[0])
        if identity["runtime"] == "unknown":
            identity["runtime"] = "netns"
            identity["name"] = netns_names[0]
    return result


def _cgroup_hints(index, init_pid, errors):
    # type: (object, object, list) -> list
    if not init_pid:
        return []
    try:
        return rp.cgroup_hints(procinfo.read_cgroup_paths(init_pid, index.proc))
    except OSError as exc:
        errors.append({"stage": "identify", "message": "pid %d: cannot read its cgroup (%s); "
                       "the process probably exited" % (init_pid, exc.strerror or exc)})
        return []


def match_pids(index, members, init_pid, matches):
    # type: (object, list, object, Matches) -> None
    for pid in members:
        for key in sorted(index._by_pid.get(pid, ())):
            if not pid_is_reused(index, key, pid):
                matches.note(key, EVIDENCE["pid"] + (1 if pid == init_pid else 0), "pid:%d" % pid)


def pid_is_reused(index, key, pid):
    # type: (object, str, int) -> bool
    """runc records the init's start time: a different one means the pid was reused."""
    start = merged(index, key).get("pid_start")
    if start is None or pid not in index._procs:
        return False
    return index._procs[pid].get("starttime") != start


def key_for_hint(index, hint):
    # type: (object, dict) -> str
    """The record a cgroup hint names; a new record from the hint alone (and, when allowed,
    the runtime's API) when no file described it."""
    runtime = hint.get("runtime")
    if hint.get("id"):
        cid = hint["id"]
        key = index._by_id.get(cid)
        if key is None:
            key = cid
            index._add(key, "cgroup:" + hint["path"], {"runtime": runtime, "id": cid})
            index._ask_cli(runtime, cid)
        return key
    name = hint.get("name")
    if runtime == "lxc":
        key = "lxc:" + name
    elif runtime == "systemd-nspawn":
        key = "nspawn:" + name
    else:
        key = index._by_name.get((runtime, name), "%s:%s" % (runtime, name))
    if key not in index._records:
        index._add(key, "cgroup:" + hint["path"], {"runtime": runtime, "id": name, "name": name})
    return key


def _stat_of(index, pid):
    # type: (object, object) -> object
    st = index._procs.get(pid) if pid else None
    if st is None:
        try:
            with open("%s/%d/stat" % (index.proc, pid), "r") as handle:
                st = nsscan.parse_stat(handle.read())
        except (OSError, ValueError, IndexError, TypeError):
            return None
    return st


def ancestor_matches(index, pid):
    # type: (object, object) -> list
    """Runtime processes above the init: conmon (podman, CRI-O), containerd-shim, the LXC
    monitor, systemd-nspawn (whichever engine remembered them while discovering)."""
    out = []
    seen = set()
    current = pid
    for _step in range(MAX_ANCESTORS):
        st = _stat_of(index, current)
        if st is None:
            break
        parent = st["ppid"]
        if parent in (0, 1) or parent in seen:
            break
        seen.add(parent)
        entry = index._by_parent.get(parent)
        if entry is not None:
            kind, opts, bundle = entry
            engine = runtime_engines.parent_engine(kind)
            key = engine.parent_key(index, kind, opts, bundle) if engine is not None else None
            if key:
                out.append((key, "parent:%s:%d" % (kind, parent)))
                break
        current = parent
    return out


def merged(index, key):
    # type: (object, str) -> dict
    """One container's fields: higher-ranked sources first, first value wins; ``sources``."""
    rec = index._records.get(key)
    if rec is None:
        return {}
    out = {"sources": []}
    for _rank, source, fields in sorted(rec["parts"], key=lambda part: -part[0]):
        out["sources"].append(source)
        for name, value in fields.items():
            if name not in out or out[name] in ({}, [], ""):
                out[name] = value
    return out


def requested(index, fields_of, key):
    # type: (object, dict, str) -> tuple
    """(requested, source, defaults): the most complete sysctl list any source had — the
    OCI bundle holds what the runtime applied, Docker's hostconfig only the user's.
    ``fields_of``: the merged record of ``key``."""
    best = None
    user = None
    for _rank, source, fields in index._records[key]["parts"]:
        req = fields.get("requested")
        if not isinstance(req, dict):
            continue
        if source.endswith("/config.v2.json") or source.startswith("api:"):
            user = req
        if best is None or len(req) > len(best[0]):
            best = (req, fields.get("requested_source") or source.split(":", 1)[-1])
    if best is None:
        return {}, None, None
    if user is None and fields_of.get("user_sysctls") is not None:
        user = dict((k, None) for k in fields_of["user_sysctls"])
    if user is None and fields_of.get("runtime") in ("runc", "lxc"):
        user = best[0]  # a bare bundle or an LXC config is written by the user: no defaults
    defaults = None if user is None else sorted(k for k in best[0] if k not in user)
    return dict(best[0]), best[1], defaults


def _empty_result(errors):
    # type: (list) -> dict
    return {
        "identity": {"runtime": "unknown", "id": None, "name": None, "image": None, "pod_name": None,
                     "pod_namespace": None, "netns_name": None, "labels": {}, "sources": []},
        "requested": {}, "requested_source": None, "requested_defaults": None,
        "host_network": None, "host_ipc": None, "host_uts": None, "errors": errors,
    }


def build(index, matches, errors):
    # type: (object, dict, list) -> dict
    """The result for the best of ``matches`` (key -> (strength, sources)); ``unknown``
    without any."""
    result = _empty_result(errors)
    if not matches:
        return result

    def order(key):
        strength, _sources = matches[key]
        return (strength, runtime_engines.rank(merged(index, key).get("runtime") or "unknown"))
    key = max(sorted(matches), key=order)
    index._reported.add(key)
    fields = merged(index, key)
    identity = result["identity"]
    for name in IDENTITY_FIELDS:
        if fields.get(name) is not None:
            identity[name] = fields[name]
    identity["runtime"] = fields.get("runtime") or "unknown"
    if identity["name"] is None and identity["runtime"] == "runc":
        identity["name"] = identity["id"]  # runc knows containers by id only
    identity["labels"] = dict(fields.get("labels") or {})
    identity["sources"] = list(matches[key][1]) + fields["sources"]
    for other in sorted(matches):
        if other != key:
            identity["sources"].append("also:%s" % other)
    req, source, defaults = requested(index, fields, key)
    if identity["pod_name"] and not req and fields.get("sandbox_id"):
        # Kubernetes puts pod sysctls on the sandbox; the app containers join its netns.
        sandbox = merged(index, index._by_id.get(fields["sandbox_id"], ""))
        if sandbox:
            req, source, defaults = requested(index, sandbox, index._by_id[fields["sandbox_id"]])
    result["requested"], result["requested_source"], result["requested_defaults"] = req, source, defaults
    for flag in ("host_network", "host_ipc", "host_uts"):
        result[flag] = fields.get(flag)
    result["errors"] = errors + list(index._records[key]["errors"])
    return result
