#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: sysctl_facts
short_description: Gather the host's sysctls and every container's own view of them
version_added: "0.1.0"
description:
  - Reads every key under C(/proc/sys) of the host, with its value (as C(sysctl -n) prints it) and
    mode, and the keys that cannot be read with the reason (C(EIO), C(EACCES), write-only).
  - Finds every distinct set of namespaces among running processes that differs from the host's
    in the C(net), C(ipc), C(uts), C(user) or C(pid) namespace, and bind-mounted network namespaces
    (C(ip netns add)) with no process in them.
  - Names each set from the host's metadata only (cgroup paths, runtime state directories, OCI
    C(config.json), LXC configuration, the runtime's CLI or socket when present) - runtime, container
    id, name, image, Kubernetes pod, the sysctls it was started with. Nothing inside a container's
    filesystem is opened and nothing from it is executed.
  - Enters each set's namespaces in a forked child (never the module's own process, never the mount
    namespace) and reads C(/proc/sys) with its own code. Only what can differ is read; the result
    holds the keys absent compared with the host, the keys whose mode differs (read-only mirrors),
    the values that differ, and the values of the requested keys.
  - Probes, without writing anything, how a fresh namespace of each type treats every key (absent,
    read-only, its own table entry), so that the classifier can tell per-namespace keys from global
    ones on this very kernel.
  - Reads the conntrack count of every network namespace, and what the host persists in
    C(sysctl.d) in systemd-sysctl's order.
  - Never writes a sysctl. Faults (a container that exits mid-gather, a namespace that hangs, a key
    that cannot be read) are recorded in C(errors) and the rest of the gather completes.
  - The facts' layout is described in the collection's C(docs/facts.md).
author:
  - nsguard.sysctl contributors (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
attributes:
  check_mode:
    support: full
    details: The module only reads; check mode changes nothing in what it does.
  diff_mode:
    support: none
  facts:
    support: full
  platform:
    platforms: posix
    details: Linux only. Needs root (CAP_SYS_ADMIN and CAP_SYS_PTRACE) to enter other namespaces.
options:
  containers:
    description:
      - Find namespace sets and read each set's own view.
      - With V(false) only the host, the conntrack figures and the probe are gathered.
    type: bool
    default: true
  probe:
    description:
      - Run the non-destructive probe in throwaway C(net), C(ipc), C(uts), C(user) and C(pid) namespaces.
      - The classifier uses it as evidence; without it the knowledge base and the kernel version decide.
    type: bool
    default: true
  view:
    description:
      - V(diff) returns only what differs from the host (small enough for a fleet).
      - V(full) also returns every key each set sees, its value in C(view.keys), the mode of most of them in
        C(view.default_mode) and any other mode in C(view.modes) (about 30 KiB per set).
    type: str
    choices: [diff, full]
    default: diff
  include:
    description:
      - Shell-style patterns (C(fnmatch)) of keys to gather, for example C(net.core.*). Empty means every key.
    type: list
    elements: str
    default: []
  exclude:
    description:
      - Shell-style patterns of keys to leave out, applied after O(include).
    type: list
    elements: str
    default: []
  timeout:
    description:
      - Seconds one namespace set may take (entering and reading). A set that overruns is killed and
        recorded in its C(errors); the others are gathered.
      - Must be above 0 and at most 86400; C(nan) and C(inf) are refused.
    type: float
    default: 5.0
  gather_timeout:
    description:
      - Seconds for the whole gather of namespace sets. Sets not started by then are recorded as skipped.
      - Must be above 0 and at most 86400; C(nan) and C(inf) are refused.
    type: float
    default: 120.0
  parallel:
    description:
      - How many sets are read at the same time. V(0) means one per CPU the module may run on.
    type: int
    default: 0
  max_pids_per_set:
    description:
      - How many member PIDs of each set are listed (C(pid_count) always has the total).
    type: int
    default: 20
  runtime_cli:
    description:
      - Ask container runtimes' CLIs or sockets (Docker API socket, C(podman inspect), C(lxc-info)) for
        names, images and requested sysctls when their state files do not say.
      - The CLIs are the host's own binaries; nothing from a container is executed.
    type: bool
    default: true
  runtime_paths:
    description:
      - Where container runtimes keep their state on this host, for hosts that moved it (Docker's
        C(data-root), LXC's C(lxc.lxcpath), a second containerd).
      - A mapping of location kinds to lists of paths; each kind given replaces its defaults, the
        others keep theirs. Shell-style patterns are allowed where the default has one.
      - "Kinds and defaults: C(docker_roots) [/var/lib/docker]; C(docker_exec_roots) [/run/docker,
        /var/run/docker]; C(docker_sockets) [/run/docker.sock, /var/run/docker.sock];
        C(docker_daemon_json) [/etc/docker/daemon.json]; C(containerd_task_dirs)
        [/run/containerd/io.containerd.runtime.v2.task, /run/containerd/io.containerd.runtime.v1.linux];
        C(runc_roots) [/run/runc, /run/crun, /run/containerd/runc/*, /run/docker/runtime-runc/*];
        C(storage_roots) [/var/lib/containers/storage]; C(storage_runroots) [/run/containers/storage];
        C(lxc_paths) [/var/lib/lxc]; C(lxc_conf) [/etc/lxc/lxc.conf]; C(machines_dirs)
        [/run/systemd/machines]; C(netns_dirs) [/run/netns, /var/run/netns]."
      - Paths that running daemons name on their command lines (C(dockerd --data-root)) are found
        without this option, but only from daemons that run as root in the host's namespaces.
      - Below each of these directories nothing is followed through a symlink, and only regular
        files of bounded size are read.
    type: dict
    default: {}
  sysctl_d_dirs:
    description:
      - Directories of C(*.conf) files the host persists, in systemd-sysctl's priority order.
    type: list
    elements: path
    default: [/etc/sysctl.d, /run/sysctl.d, /usr/local/lib/sysctl.d, /usr/lib/sysctl.d, /lib/sysctl.d]
  sysctl_conf:
    description:
      - The legacy file applied after the C(sysctl.d) directories. Empty to ignore it.
    type: path
    default: /etc/sysctl.conf
notes:
  - Works as a plain task and as a facts module (C(ANSIBLE_FACTS_MODULES=ansible.builtin.setup,nsguard.sysctl.sysctl_facts)).
  - The default result (diff view) is about 370 KiB for a host with 100 containers (133 KiB for the host and its probe,
    about 2.2 KiB per container; measured by C(bench/bench_gather.py)); see the collection's
    C(docs/facts.md) for the layout.
  - Python 3.12 has C(os.setns); older interpreters call C(setns(2)) through ctypes.
seealso:
  - name: namespaces(7)
    description: Linux namespaces.
    link: https://man7.org/linux/man-pages/man7/namespaces.7.html
"""

EXAMPLES = r"""
- name: Gather the host's and every container's sysctls
  nsguard.sysctl.sysctl_facts:

- name: Only networking keys, full view of each container
  nsguard.sysctl.sysctl_facts:
    include: ['net.*']
    view: full

- name: Host only, no probe (fast)
  nsguard.sysctl.sysctl_facts:
    containers: false
    probe: false

- name: A host whose Docker keeps its state under /data/docker and LXC under /srv/lxc
  nsguard.sysctl.sysctl_facts:
    runtime_paths:
      docker_roots: [/data/docker]
      lxc_paths: [/srv/lxc]

- name: Show containers whose somaxconn differs from the host
  ansible.builtin.debug:
    msg: "{{ item.identity.name }}: {{ item.view.differs['net.core.somaxconn'] }}"
  loop: "{{ ansible_facts.nsguard_sysctl.namespace_sets }}"
  when: "'net.core.somaxconn' in item.view.differs"
"""

RETURN = r"""
ansible_facts:
  description: Facts to add to ansible_facts.
  returned: always
  type: complex
  contains:
    nsguard_sysctl:
      description: The host's sysctls, every namespace set's view, conntrack use and the probe (docs/facts.md).
      returned: always
      type: complex
      contains:
        schema_version:
          description: >-
            Version of this layout: 3. C(host.keys) maps each key to its value, C(host.default_mode) is the mode of
            most keys and C(host.modes) maps each key with another mode to it. Version 2 listed every key's mode in
            C(host.modes); version 1 had one C({value, mode}) mapping per key. The controller still reads both.
          type: int
          sample: 3
        gathered_at:
          description: UTC time of the gather, ISO 8601.
          type: str
        duration_ms:
          description: How long the gather took.
          type: int
        options:
          description: The options the module ran with.
          type: dict
        host:
          description: >-
            Kernel, namespaces, C(keys) (every readable key and its value), C(default_mode) (the file mode of most
            of them), C(modes) (the keys whose mode is another, with it), C(unreadable) (keys that exist but could
            not be read, with mode and reason), persisted settings.
          type: dict
        namespace_sets:
          description: >-
            Every namespace set that differs from the host's: namespaces, members, identity, requested sysctls,
            privileges, its view (absent keys, mode and value differences, requested values), conntrack count, errors.
          type: list
          elements: dict
        conntrack:
          description: nf_conntrack_max, nf_conntrack_buckets, nf_conntrack_expect_max and the count of every network namespace.
          type: dict
        probe:
          description: What throwaway namespaces do to each key (absent, mode, value, owning namespace type).
          type: dict
        errors:
          description: Faults met during the gather, each with the stage and a message.
          type: list
          elements: dict
"""

import gc
import json
import math
import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.nsguard.sysctl.plugins.module_utils import (
    nsenter, nsscan, persisted, probe as probe_mod, procsys)
from ansible_collections.nsguard.sysctl.plugins.module_utils.procinfo import host_bounding_set, read_privileges
from ansible_collections.nsguard.sysctl.plugins.module_utils.runtime_paths import DEFAULT_PATHS as DEFAULT_RUNTIME_PATHS

SCHEMA_VERSION = 3
# An upper bound for timeout and gather_timeout (one day).
MAX_SECONDS = 86400


def cpu_count():
    # type: () -> int
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def host_section(keys, unreadable, host_ns, persisted_facts):
    # type: (dict, dict, dict, dict) -> dict
    uname = os.uname()  # gethostname(2) is uname's nodename: no socket module to import (4 ms compiled)
    host = {
        "kernel": {"release": uname.release, "version": uname.version, "machine": uname.machine},
        "hostname": uname.nodename,
        "cpus": cpu_count(),
        # who gathered: without root most namespace sets cannot be entered (a partial audit)
        "euid": os.geteuid(),
        "ns": host_ns,
    }
    host.update(procsys.key_tables(keys))  # keys, default_mode, modes (docs/facts.md, schema_version 3)
    host["unreadable"] = {k: {f: v[f] for f in ("mode", "reason", "message")} for k, v in sorted(unreadable.items())}
    host["persisted"] = persisted_facts
    return host


def conntrack_section(host_keys, sets, host_ns):
    # type: (dict, list, dict) -> dict
    def number(key):
        item = host_keys.get(key)
        try:
            return int(item["value"]) if item else None
        except ValueError:
            return None

    loaded = "net.netfilter.nf_conntrack_max" in host_keys
    per_netns = [{"net": host_ns.get("net"), "count": number("net.netfilter.nf_conntrack_count"),
                  "host": True, "sets": []}]
    by_net = {}
    for ns_set in sets:
        if "net" not in ns_set["differs_from_host"]:
            per_netns[0]["sets"].append(ns_set["id"])
            continue
        entry = by_net.get(ns_set["ns"]["net"])
        if entry is None:
            entry = {"net": ns_set["ns"]["net"], "count": ns_set.get("conntrack_count"), "host": False, "sets": []}
            by_net[ns_set["ns"]["net"]] = entry
            per_netns.append(entry)
        elif entry["count"] is None:
            entry["count"] = ns_set.get("conntrack_count")
        entry["sets"].append(ns_set["id"])
    return {
        "loaded": loaded,
        "max": number("net.netfilter.nf_conntrack_max"),
        "buckets": number("net.netfilter.nf_conntrack_buckets"),
        "expect_max": number("net.netfilter.nf_conntrack_expect_max"),
        "per_netns": per_netns,
    }


def gather(params):
    # type: (dict) -> dict
    started = time.monotonic()
    errors = []
    wanted = procsys.compile_filter(params["include"], params["exclude"])
    # The host is the module's own namespaces: PID 1 may be unreadable (another user
    # namespace, a sandboxed init), and the module runs where Ansible put it.
    host_ns = nsscan.read_ns("self")
    parallel = params["parallel"] or cpu_count()
    keys, unreadable = procsys.read_tree(wanted=wanted, with_inodes=True)
    # The probe's readers are forked as soon as the host is read: each inherits the host's keys,
    # compares its throwaway namespace with them and sends back only what differs, while this
    # process reads the sysctl.d files and /proc. One reader per CPU, each taking the next type
    # when done: five readers on two CPUs cost a fork each and finish no sooner.
    running_probe = None
    if params["probe"]:
        probe_input = dict(keys)
        probe_input.update(unreadable)
        running_probe = probe_mod.start_probe(probe_input, types=probe_mod.PROBE_TYPES,
                                              parallel=min(cpu_count(), len(probe_mod.PROBE_TYPES)),
                                              timeout=max(params["timeout"], 10.0))
    try:
        persisted_facts, sets = _read_persisted_and_sets(params, keys, host_ns, errors)
    except BaseException:
        if running_probe is not None:
            running_probe.abandon()
        raise

    probe_facts = {"enabled": False}
    if running_probe is not None:
        probe_facts = running_probe.finish()
        errors.extend(probe_facts["errors"])

    if sets:
        read_views(sets, keys, unreadable, probe_facts, wanted, params, parallel, started)

    for ns_set in sets:
        ns_set.pop("ns_paths", None)
        for err in ns_set["errors"]:
            errors.append(dict(err, set=ns_set["id"]))
    return {
        "schema_version": SCHEMA_VERSION,
        "gathered_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "duration_ms": int((time.monotonic() - started) * 1000),
        "options": dict(params),
        "host": host_section(keys, unreadable, host_ns, persisted_facts),
        "namespace_sets": sets,
        "conntrack": conntrack_section(keys, sets, host_ns),
        "probe": probe_facts,
        "errors": errors,
    }


def _read_persisted_and_sets(params, keys, host_ns, errors):
    # type: (dict, dict, dict, list) -> tuple
    """The host's persisted settings (``keys``: the host's readable keys), and the namespace
    sets found on it with their runtime identity (no view yet)."""
    persisted_facts = persisted.read_persisted(tuple(params["sysctl_d_dirs"]), params["sysctl_conf"] or None, keys,
                                               runtime_paths=params.get("runtime_paths"))
    sets = []
    if params["containers"]:
        sets, scan_errors = nsscan.scan(host_ns, max_pids=params["max_pids_per_set"], own_pids=(os.getpid(),))
        errors.extend(scan_errors)
        mounts = nsscan.nsfs_mounts()
        sets.extend(nsscan.netns_only_sets(nsscan.named_netns(mounts), mounts, sets, host_ns))
        # imported here: a host-only gather (containers off) pays for none of the runtime engines
        from ansible_collections.nsguard.sysctl.plugins.module_utils.runtimes import RuntimeIndex

        index = RuntimeIndex(use_cli=params["runtime_cli"], timeout=min(params["timeout"], 10.0),
                             paths=params.get("runtime_paths") or None)
        host_bounding = host_bounding_set()  # PID 1's, read once for all sets
        for ns_set in sets:
            identify_set(index, ns_set, host_ns, host_bounding)
        # Runtime metadata that was malformed but belonged to no set is still worth a message.
        errors.extend(index.unreported_errors())
    return persisted_facts, sets


def identify_set(index, ns_set, host_ns, host_bounding=None):
    # type: (RuntimeIndex, dict, dict, object) -> None
    """Identity, requested sysctls and privilege signals, from host metadata only."""
    ns_set["errors"] = []
    try:
        found = index.identify(pids=ns_set["pids"], init_pid=ns_set["representative_pid"], ns=ns_set["ns"])
    except Exception as exc:  # one unreadable runtime file must not cost the whole gather
        found = {"identity": {"runtime": "unknown"}, "requested": {},
                 "errors": [{"stage": "identify", "message": "%s: %s" % (type(exc).__name__, exc)}]}
    identity = found.get("identity") or {"runtime": "unknown"}
    if ns_set.get("netns_names") and not identity.get("netns_name"):
        identity["netns_name"] = ns_set["netns_names"][0]
        if identity.get("runtime", "unknown") == "unknown":
            identity["runtime"] = "netns"
            identity["name"] = identity.get("name") or ns_set["netns_names"][0]
    ns_set.pop("netns_names", None)
    ns_set["identity"] = identity
    ns_set["requested"] = found.get("requested") or {}
    ns_set["requested_source"] = found.get("requested_source")
    # Keys the engine set by itself (Docker's ping_group_range, ...): nobody asked for them.
    ns_set["requested_defaults"] = found.get("requested_defaults")
    for flag in ("host_network", "host_ipc", "host_uts"):
        ns_set[flag] = found.get(flag)
    ns_set["errors"].extend(found.get("errors") or [])
    pid = ns_set["representative_pid"]
    if pid is None:
        ns_set["privileges"] = None
        return
    try:
        ns_set["privileges"] = read_privileges(pid, host_ns, host_bounding=host_bounding)
        ns_set["errors"].extend(ns_set["privileges"].pop("errors", None) or [])
    except (OSError, ValueError) as exc:
        ns_set["privileges"] = None
        ns_set["errors"].append({"stage": "privileges", "message": "pid %s: %s" % (pid, exc)})


def read_views(sets, keys, unreadable, probe_facts, wanted, params, parallel, started):
    # type: (list, dict, dict, dict, callable, dict, int, float) -> None
    # imported here: a host-only gather (containers off) reads no set views
    from ansible_collections.nsguard.sysctl.plugins.module_utils import views

    full = params["view"] == "full"
    probe_owner = probe_facts.get("owner") if probe_facts.get("enabled") else None
    plans = {}  # sets of the same shape read the same keys: plan once per shape, not per set

    def reader_for(ns_set, tree_cache):
        shape = tuple(ns_set["differs_from_host"])
        if shape not in plans:
            plans[shape] = views.plan_keys(shape, keys, probe_owner, full)
        return views.make_reader(ns_set, keys, unreadable, plans[shape], probe_facts, wanted, full,
                                 tree_cache=tree_cache)

    def run(group_members):
        """``{group key: [set, ...]}`` -> ``{set id: answer}``, one job per group."""

        jobs = []
        for key, members in group_members.items():
            cache = {}  # the group's network namespace, read once (in the worker's copy)
            target = views.make_group_reader([(m["id"], reader_for(m, cache)) for m in members])
            jobs.append(nsenter.Job(key, target, timeout=params["timeout"] * len(members)))
        answers = nsenter.run_parallel(jobs, parallel=parallel, timeout=params["timeout"],
                                       deadline=started + params["gather_timeout"])
        per_set = {}
        for key, members in group_members.items():
            answer = answers.get(key, {})
            for member in members:
                # A job that failed as a whole (timeout, a dead reader) fails each of its sets.
                per_set[member["id"]] = answer["value"].get(member["id"], {}) if answer.get("ok") else answer
        return per_set

    groups = {}
    for ns_set in sets:
        groups.setdefault(views.group_key(ns_set, full), []).append(ns_set)
    answers = run(groups)
    # The representative may exit while other members live on (a shell's children): enter
    # through a member that is still there, once.
    retry = {}
    for ns_set in sets:
        if answers.get(ns_set["id"], {}).get("stage") != "enter" or ns_set["representative_pid"] is None:
            continue
        pid = nsscan.live_member(ns_set)
        if pid is not None and pid != ns_set["representative_pid"]:
            ns_set["ns_paths"] = {t: "/proc/%d/ns/%s" % (pid, t) for t in ns_set["ns_paths"]}
            retry["set:%s" % ns_set["id"]] = [ns_set]
    if retry:
        answers.update(run(retry))
    for ns_set in sets:
        answer = answers.get(ns_set["id"], {})
        if answer.get("ok"):
            ns_set["view"] = answer["value"]["view"]
            ns_set["conntrack_count"] = answer["value"]["conntrack_count"]
        else:
            ns_set["view"] = None
            ns_set["conntrack_count"] = None
            stage = answer.get("stage", "read")
            message = answer.get("error", "no answer")
            if not nsscan.still_alive(ns_set):
                message = "the set's processes exited during the gather (%s)" % message
                stage = "vanished"
            ns_set["errors"].append({"stage": stage, "message": message})


def runtime_paths_problem(runtime_paths):
    # type: (dict) -> str
    """What is wrong with the ``runtime_paths`` option (naming the kind), or None."""
    for kind, paths in sorted((runtime_paths or {}).items()):
        if kind not in DEFAULT_RUNTIME_PATHS:
            return "unknown location kind %r (known: %s)" % (kind, ", ".join(sorted(DEFAULT_RUNTIME_PATHS)))
        if not isinstance(paths, list) or not all(isinstance(p, str) and p.startswith("/") for p in paths):
            return "%s must be a list of absolute paths, got %r" % (kind, paths)
    return None


def main():
    argument_spec = dict(
        containers=dict(type="bool", default=True),
        probe=dict(type="bool", default=True),
        view=dict(type="str", default="diff", choices=["diff", "full"]),
        include=dict(type="list", elements="str", default=[]),
        exclude=dict(type="list", elements="str", default=[]),
        timeout=dict(type="float", default=5.0),
        gather_timeout=dict(type="float", default=120.0),
        parallel=dict(type="int", default=0),
        max_pids_per_set=dict(type="int", default=20),
        runtime_cli=dict(type="bool", default=True),
        runtime_paths=dict(type="dict", default={}),
        sysctl_d_dirs=dict(type="list", elements="path", default=list(persisted.SYSCTL_D_DIRS)),
        sysctl_conf=dict(type="path", default=persisted.SYSCTL_CONF),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    for name in ("timeout", "gather_timeout"):
        # NaN compares false with everything and inf overflows time_t in poll/alarm: both refused
        if not math.isfinite(params[name]) or params[name] > MAX_SECONDS:
            module.fail_json(msg="option %s must be a finite number of seconds up to %d, got %s"
                             % (name, MAX_SECONDS, params[name]))
        if params[name] <= 0:
            module.fail_json(msg="option %s must be a positive number of seconds, got %s" % (name, params[name]))
    for name in ("parallel", "max_pids_per_set"):
        if params[name] < 0:
            module.fail_json(msg="option %s must be 0 or more, got %s" % (name, params[name]))
    problem = runtime_paths_problem(params["runtime_paths"])
    if problem:
        module.fail_json(msg="option runtime_paths: %s" % problem)
    if not os.path.isdir(procsys.PROC_SYS):
        module.fail_json(msg="%s is not there: sysctl_facts needs Linux with procfs mounted" % procsys.PROC_SYS)
    # Everything alive now (Ansible, the arguments) lives until the process exits: frozen, the
    # collector no longer walks it, here nor in the forked probe and readers, whose collections
    # would otherwise touch (and so copy) the pages of every object inherited (2-3% of a
    # gather's CPU with 100 sets, by perf).
    gc.freeze()
    try:
        facts = gather(params)
    except nsenter.NamespaceError as exc:
        module.fail_json(msg="gathering sysctls failed: %s" % exc)
    module.exit_json(changed=False, ansible_facts={"nsguard_sysctl": json_safe(facts)})


def json_safe(obj):
    # type: (object) -> object
    """Last line of defence: Ansible refuses a result with a lone surrogate (a name read from
    a tenant-controlled file or directory), so every string is made UTF-8-safe.

    Almost every gather has none: one C-speed encode of the whole result proves it (a lone
    surrogate cannot be encoded), and then the facts are returned as they are; only a result
    that fails is copied string by string (:func:`_json_safe_copy`). Tuples, which the copy
    turns into lists, are lists for Ansible either way (its result walk makes them lists).
    """
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
        return obj
    except (UnicodeEncodeError, TypeError, ValueError):
        return _json_safe_copy(obj)


def _json_safe_copy(obj):
    # type: (object) -> object
    if isinstance(obj, str):
        return procsys.text_safe(obj)
    if isinstance(obj, dict):
        return {_json_safe_copy(k): _json_safe_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe_copy(v) for v in obj]
    return obj


if __name__ == "__main__":
    main()
