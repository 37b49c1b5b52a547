# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""remediation.yml: the findings' remediation tasks as one playbook, one play per host.

- Every task carries the id of each rule that asked for it as a tag (``--tags NSG001``).
- Identical tasks that several findings of one host ask for (50 containers requesting the same
  ``vm.max_map_count``) are written once, with the union of the tags.
- Host-side tasks (``remediation.where: host``) sit in a block that runs only when the target's
  module process is in the kernel's initial pid and user namespaces, so they never run when the
  target itself is a container, and a host-side task that tries to reach elsewhere
  (``delegate_to``, ``connection``) is refused.
- Where that guard is false a debug task says why (the target's namespace inodes), so a run
  against a container is not silently a no-op.
- Container-side tasks (spec, LXC config, named netns; also NSG001's removal of a key from a
  spec, which sits in a host finding) change how a container is started and may recreate it;
  they carry the ``never`` tag too and run only when their rule id or ``container-spec`` is
  asked for with ``--tags``. Tasks that recreate the same Docker/Podman container or patch the
  same pod template are merged into one (:func:`_merge_spec_tasks`).
- Facts are data, never code (docs/reliability.md, threat model). Every string of the playbook
  that Jinja would evaluate (``{{``, ``{%``, ``{#``), mapping keys included, is written
  ``!unsafe`` in one place, :func:`_dump_play`, after every transformation (merged names, diff
  previews), except the renderer's own templates (:class:`_Template`). Only tasks the engine
  builds are accepted (:func:`task_problem`: an allowlist of modules and their arguments, the
  engine's constant conditions, no connection or privilege keywords anywhere); anything else is
  refused and listed at the end of the file.
- Kubernetes patches are API calls from the controller: they run in a play of their own on
  ``localhost`` (:func:`k8s_play`), deduplicated across hosts (a DaemonSet's pods on every node ask
  for the same patch), so no task needs ``delegate_to``.
- Hosts that were not audited are listed in the header comment.

Modules such as ``ansible.posix.sysctl`` support check mode, so ``--check --diff`` shows what
would change without changing it; ``ansible.posix.sysctl`` has no diff of its own, so in diff
mode each host task is preceded by a check-mode-only ``lineinfile`` preview of its sysctl.d line
(:func:`_diff_preview`) that shows a change only where ``ansible.posix.sysctl`` would write one,
and a change shown by the preview is not counted again by the task itself.
"""
from __future__ import annotations

import json
import re
from typing import IO, Any, Dict, Iterator, List, Mapping, Optional, Tuple

import yaml

from . import remediation as rem
from .container_specs import K8S_MODULE, POD_SPEC_PATHS, SYSCTL_OPTIONS, pod_spec_in, with_pod_spec
from .remediation import NS_STAT_VAR, PROC_PID_INIT_INO, PROC_USER_INIT_INO, where_tag
from .render_common import clean_text
from .report import iter_findings_by_host

__all__ = ["render_remediation", "HOST_GUARD", "INIT_PID_NS", "INIT_USER_NS", "build_plays", "iter_plays",
           "task_problem", "k8s_play"]

# The host itself runs in the kernel's initial pid and user namespaces, whose nsfs inode numbers
# are fixed (PROC_PID_INIT_INO, PROC_USER_INIT_INO in include/linux/proc_ns.h). A container (own
# pid or user namespace) never has both, whatever Ansible's virtualization facts guess (they
# call some VMs "docker"). The play stats /proc/self/ns/{pid,user} of the module process first.
INIT_PID_NS, INIT_USER_NS = PROC_PID_INIT_INO, PROC_USER_INIT_INO
NS_VAR = NS_STAT_VAR
# Fails closed: without the namespace inodes (stat skipped, no /proc) the host-side block does not run.
HOST_GUARD = ("%s is defined and (%s.results | map(attribute='stat.inode', default=0) | list) == [%d, %d]"
              % (NS_VAR, NS_VAR, INIT_PID_NS, INIT_USER_NS))
_JINJA = re.compile(r"\{\{|\{%|\{#")
_PLAIN_HOST = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_TAG = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")

# What a finding's task may hold (task_problem). The keywords of a task the engine writes; no
# connection, privilege, delegation, loop or variable keyword is ever one of them.
_TASK_KEYWORDS = frozenset({"name", "when", "tags", "register", "changed_when"})
# Each condition a finding's task may carry is one of the engine's constants, compared whole.
_CONDITIONS = {"when": frozenset({rem.HOST_GUARD, rem.SPEC_GUARD}), "changed_when": frozenset({rem.NETNS_CHANGED})}
_REGISTERS = frozenset({rem.NETNS_RESULT_VAR})
# module -> its arguments the engine writes -> the kind of value allowed
_SCALAR, _MAP, _STRINGS, _DEFINITION = "scalar", "map", "strings", "definition"
_MODULE_ARGS: Dict[str, Dict[str, str]] = {
    "ansible.posix.sysctl": {"name": _SCALAR, "value": _SCALAR, "state": _SCALAR, "sysctl_file": _SCALAR,
                             "sysctl_set": _SCALAR, "reload": _SCALAR},
    "ansible.builtin.lineinfile": {"path": _SCALAR, "regexp": _SCALAR, "line": _SCALAR, "state": _SCALAR},
    "ansible.builtin.command": {"argv": _STRINGS},
    **{module: {"name": _SCALAR, "state": _SCALAR, "image": _SCALAR, option: _MAP, "privileged": _SCALAR,
                "cap_drop": _STRINGS} for module, option in SYSCTL_OPTIONS.items()},
    K8S_MODULE: {"state": _SCALAR, "api_version": _SCALAR, "kind": _SCALAR, "name": _SCALAR,
                 "namespace": _SCALAR, "definition": _DEFINITION},
}
# The keys a k8s patch definition may hold at any depth: the way to the pod template of every
# workload kind (a CronJob's jobTemplate included), its sysctls and a container's securityContext
# (remediation._k8s_patch_task and container_privilege_tasks).
_DEFINITION_KEYS = frozenset({part for path in POD_SPEC_PATHS.values() for part in path}) | frozenset({
    "securityContext", "sysctls", "name", "value", "containers", "privileged", "allowPrivilegeEscalation",
    "capabilities", "drop", "procMount"})
# The diff preview's own registered results and conditions (renderer constants).
_PREVIEW_FOUND = "nsguard_sysctl_preview_found"
_PREVIEW_SHOWN = "nsguard_sysctl_preview_shown"
_HOST_RESULT = "nsguard_sysctl_host_result"


class _Unsafe(str):
    """A string written with the !unsafe tag (Ansible never templates it)."""


class _Template(str):
    """A string the renderer itself writes to be templated (a guard's inode list, a loop item).
    The only strings with Jinja in them that :func:`_dump_play` leaves unmarked."""


# libyaml's emitter when PyYAML has it (10x faster on a 2,000-host fleet); same output rules
class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    pass


def _represent_unsafe(dumper: yaml.SafeDumper, data: _Unsafe) -> yaml.Node:
    return dumper.represent_scalar("!unsafe", str(data), style='"')


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    # a subclass of str (AnsibleUnsafeText from hostvars) must still dump as a plain string
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(data))


_Dumper.add_representer(_Unsafe, _represent_unsafe)
_Dumper.add_multi_representer(str, _represent_str)


def _protect(value: Any) -> Any:
    """Plain Python for SafeDumper, every Jinja-looking string (keys too) as ``!unsafe`` except
    the renderer's own :class:`_Template`. Applied once, to a whole play, just before it is
    written: whatever a finding, a merge or a preview put in it, nothing from facts templates."""
    if type(value) is str:  # most of a play; the exact type only (a subclass takes the path below)
        return _Unsafe(value) if _JINJA.search(value) else value
    if isinstance(value, Mapping):
        return {_protect(k) if isinstance(k, str) else str(k): _protect(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_protect(v) for v in value]
    if isinstance(value, (_Unsafe, _Template)):
        return value
    if isinstance(value, str):
        text = str(value)
        return _Unsafe(text) if _JINJA.search(text) else text
    # Ansible's tagged int/float subclasses are not representable by SafeDumper: plain copies
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if value is None:
        return None
    return str(value)


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _definition_problem(value: Any, path: str = "definition") -> Optional[str]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if key not in _DEFINITION_KEYS:
                return "%s has key %r, which no engine patch writes" % (path, clean_text(key)[:80])
            problem = _definition_problem(item, "%s.%s" % (path, key))
            if problem:
                return problem
        return None
    if isinstance(value, list):
        for index, item in enumerate(value):
            problem = _definition_problem(item, "%s[%d]" % (path, index))
            if problem:
                return problem
        return None
    return None if _scalar(value) else "%s holds a %s" % (path, type(value).__name__)


def _argument_problem(module: str, args: Mapping[str, Any]) -> Optional[str]:
    allowed = _MODULE_ARGS[module]
    for name, value in args.items():
        kind = allowed.get(name)
        if kind is None:
            return "%s argument %r is not one the engine writes" % (module, clean_text(name)[:80])
        if kind == _SCALAR and not _scalar(value):
            return "%s argument %s must be a single value" % (module, name)
        if kind == _MAP and not (isinstance(value, Mapping) and all(
                isinstance(k, str) and _scalar(v) for k, v in value.items())):
            return "%s argument %s must map keys to values" % (module, name)
        if kind == _STRINGS and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            return "%s argument %s must be a list of strings" % (module, name)
        if kind == _DEFINITION:
            problem = _definition_problem(value)
            if problem:
                return problem
    if module == "ansible.builtin.command":
        # only the engine's netns task: ip netns exec NAME sh -c NETNS_SCRIPT nsguard KEY=VALUE...
        argv = args.get("argv") or []
        if (len(argv) < 9 or argv[:3] != ["ip", "netns", "exec"] or argv[4:8] != ["sh", "-c", rem.NETNS_SCRIPT, "nsguard"]
                or not all(re.match(r"^net\.[^=\s]+=", kv) for kv in argv[8:])):
            return "ansible.builtin.command is accepted only as the engine's netns task"
    if module == "ansible.builtin.lineinfile":
        path = str(args.get("path") or "")
        if not path.startswith("/") or "/../" in path + "/":
            return "ansible.builtin.lineinfile path must be absolute without '..'"
    return None


def task_problem(task: Any) -> Optional[str]:
    """Why ``task`` is not one the engine builds (``None`` when it is): exactly one module of
    :data:`_MODULE_ARGS` with only the arguments the engine writes, only the keywords of
    :data:`_TASK_KEYWORDS`, each condition one of the engine's constants, tags plain words."""
    if not isinstance(task, Mapping) or not task:
        return "not a task mapping"
    modules = [k for k in task if k in _MODULE_ARGS]
    others = [k for k in task if k not in _MODULE_ARGS and k not in _TASK_KEYWORDS]
    if others:
        return "uses %s, which no engine task has" % ", ".join(repr(clean_text(k)[:40]) for k in others[:3])
    if len(modules) != 1:
        return "names %d modules of the engine's (one expected)" % len(modules)
    args = task[modules[0]]
    if not isinstance(args, Mapping):
        return "%s arguments are not a mapping" % modules[0]
    problem = _argument_problem(modules[0], args)
    if problem:
        return problem
    for keyword, allowed in _CONDITIONS.items():
        if keyword in task and task[keyword] not in allowed:
            return "%s is not one of the engine's conditions" % keyword
    if "register" in task and task["register"] not in _REGISTERS:
        return "registers %r" % clean_text(task["register"])[:40]
    if not isinstance(task.get("name", ""), str):
        return "name is not a string"
    tags = task.get("tags", [])
    if not (isinstance(tags, list) and all(isinstance(t, str) and _TAG.match(t) for t in tags)):
        return "tags are not plain words"
    return None


def _tags(task: Mapping[str, Any]) -> List[str]:
    tags = task.get("tags")
    if isinstance(tags, str):
        return [t.strip() for t in tags.split(",") if t.strip()]
    if isinstance(tags, list):
        return [str(t) for t in tags]
    return []


def _ordered(task: Mapping[str, Any], tags: List[str]) -> Dict[str, Any]:
    """name first, keywords that read best last (when, tags)."""
    out: Dict[str, Any] = {}
    if "name" in task:
        out["name"] = task["name"]
    for k, v in task.items():
        if k not in ("name", "when", "tags"):
            out[k] = v
    if "when" in task:
        out["when"] = task["when"]
    out["tags"] = tags
    return out


def _spec_target(task: Mapping[str, Any]) -> Any:
    """What a container-spec task recreates or patches, or None for one that edits a file line.
    The engine modules (SYSCTL_OPTIONS) replace a container's whole definition: one task per container."""
    for module in SYSCTL_OPTIONS:
        if isinstance(task.get(module), Mapping):
            return (module, str(task[module].get("name")))
    args = task.get(K8S_MODULE)
    if isinstance(args, Mapping) and args.get("state") == "patched":
        return (K8S_MODULE, str(args.get("api_version")), str(args.get("kind")), str(args.get("namespace")),
                str(args.get("name")))
    return None


def _is_container_task(task: Mapping[str, Any]) -> bool:
    """A task that changes a container (its spec, its config file, its namespace), not the host:
    remediation.py tags each one so."""
    return _spec_target(task) is not None or where_tag("container-spec") in _tags(task)


def _sysctl_map(task: Mapping[str, Any], target: Any) -> Optional[Dict[str, Any]]:
    """The sysctls a recreate/patch task gives the container, or None when it sets none."""
    if target[0] in SYSCTL_OPTIONS:
        found = task[target[0]].get(SYSCTL_OPTIONS[target[0]])
        return dict(found) if isinstance(found, Mapping) else None
    args = task[K8S_MODULE]
    found = (pod_spec_in(args.get("definition") or {}, args.get("kind")).get("securityContext") or {}).get("sysctls")
    if not isinstance(found, list):
        return None
    return {str(s.get("name")): s.get("value") for s in found if isinstance(s, Mapping)}


def _with_sysctls(module: str, args: Mapping[str, Any], sysctls: Mapping[str, Any]) -> Dict[str, Any]:
    """``args`` of ``module`` with this sysctl map."""
    if module in SYSCTL_OPTIONS:
        return dict(args, **{SYSCTL_OPTIONS[module]: dict(sysctls)})
    definition = args.get("definition") or {}
    pod = dict(pod_spec_in(definition, args.get("kind")))
    pod["securityContext"] = dict(pod.get("securityContext") or {},
                                  sysctls=[{"name": k, "value": v} for k, v in sysctls.items()])
    return dict(args, definition=with_pod_spec(definition, pod, args.get("kind")))


def _named_items(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, Mapping) and "name" in item for item in value)


def _deep_merge(base: Any, extra: Any) -> Any:
    """``base`` with what ``extra`` adds: mappings merged key by key, lists of mappings that all
    have a ``name`` merged by it (a pod's ``containers``: NSG006 for two containers of one pod
    patches one each, and Kubernetes' strategic merge joins them the same way); ``base`` wins
    elsewhere."""
    if isinstance(base, Mapping) and isinstance(extra, Mapping):
        out = dict(base)
        for key, value in extra.items():
            out[key] = _deep_merge(base[key], value) if key in base else value
        return out
    if _named_items(base) and _named_items(extra):
        merged: Dict[Any, Any] = {}
        for item in list(base) + list(extra):
            name = item["name"]
            merged[name] = _deep_merge(merged[name], item) if name in merged else item
        return list(merged.values())
    return base


SpecEntry = Tuple[Mapping[str, Any], Mapping[str, Any]]   # (finding, task)


def _merge_spec_tasks(entries: List[SpecEntry], problems: List[str]) -> List[SpecEntry]:
    """One task per container for the modules that recreate it (docker/podman) or replace its
    pod template's sysctl list (a k8s patch: ``sysctls`` has no merge key).

    Each finding's spec task carries the container's whole sysctl map with that finding's one
    key changed (set, or dropped). Run one after the other, each would recreate the container
    with its own map: the last one wins, earlier fixes are undone, and every later run
    recreates it again. Merged: the map of the first task that has one, with every finding's key
    as its task has it, the other options (NSG006's ``privileged: false``, ``cap_drop``, a pod's
    containers by name) added. ``entries`` are (finding, task) in report order; the merged task
    takes the place of the first.
    """
    groups: Dict[Any, List[SpecEntry]] = {}
    order: List[Any] = []
    for index, (finding, task) in enumerate(entries):
        target = _spec_target(task) or ("unmerged", index)
        if target not in groups:
            groups[target] = []
            order.append(target)
        groups[target].append((finding, task))
    out: List[SpecEntry] = []
    for target in order:
        group = groups[target]
        if len(group) == 1:
            out.append(group[0])
            continue
        module = target[0]
        first_finding, first = group[0]
        args: Any = first[module]
        for dummy, task in group[1:]:
            args = _deep_merge(args, task[module])
        wanted: Dict[str, Any] = {}
        for finding, task in group:
            theirs = _sysctl_map(task, target)
            key = finding.get("key")
            if key is None or theirs is None:
                continue   # not a sysctl change (NSG006's privileges)
            value = theirs.get(key)
            if key in wanted and wanted[key] != value:
                problems.append("%s: %s asks for %s=%s after %s: merged with the last one" % (
                    clean_text(str(target[-1])), finding["rule"], key, value, wanted[key]))
            wanted[key] = value
        # the container's map as the first task that writes one has it (NSG006's has none)
        sysctls = next((m for m in (_sysctl_map(t, target) for dummy, t in group) if m is not None), None)
        if wanted or sysctls is not None:
            merged = dict(sysctls or {})
            for key, value in wanted.items():
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value
            args = _with_sysctls(module, args, dict(sorted(merged.items())))
        tags: List[str] = []
        for dummy, task in group:
            tags.extend(t for t in _tags(task) if t not in tags)
        rules = ", ".join(dict.fromkeys(str(f["rule"]) for f, dummy in group))
        changes = ", ".join(dict.fromkeys(str(f.get("key") or "privileges") for f, dummy in group))
        name = "%s: every change to %s %s (%s)" % (rules, module.rsplit(".", 1)[-1], target[-1], changes)
        out.append((first_finding, dict(first, name=name, tags=tags, **{module: args})))
    return out


SpecEntries = List[SpecEntry]


HostEntries = List[Tuple[str, Mapping[str, Any], Mapping[str, Any]]]   # (where, finding, task)


def _accepted(findings: List[Mapping[str, Any]], problems: List[str]) -> Tuple[HostEntries, SpecEntries, SpecEntries]:
    """The findings' tasks that pass :func:`task_problem`, split by where they act: host-side
    ``(where, finding, task)``, container spec ``(finding, task)``, Kubernetes ``(finding, task)``."""
    host: HostEntries = []
    spec: SpecEntries = []
    k8s: SpecEntries = []
    for f in findings:
        remediation = f.get("remediation")
        if not isinstance(remediation, Mapping) or remediation.get("where") not in ("host", "container-spec"):
            continue
        tasks = remediation.get("tasks")
        if not isinstance(tasks, list):
            continue
        for i, task in enumerate(tasks):
            problem = task_problem(task)
            if problem:
                name = task.get("name", "") if isinstance(task, Mapping) else ""
                problems.append("%s %s: remediation.tasks[%d] %r %s; refused (only tasks the engine builds are written)"
                                % (f["host"], f["rule"], i, clean_text(name)[:120], problem))
                continue
            # where the task acts, whatever the finding says: NSG001 (a host finding) also drops
            # the key from the container's spec, and that task is a container-spec change
            if K8S_MODULE in task:
                k8s.append((f, task))
            elif _is_container_task(task):
                spec.append((f, task))
            elif remediation.get("where") == "host":
                host.append(("host", f, task))
            else:
                spec.append((f, task))
    return host, spec, k8s


def _dedupe(entries: HostEntries) -> Dict[str, List[Dict[str, Any]]]:
    """Tasks by where they act, identical ones once with their tags merged.

    Two tasks are the same when all but their name and tags are equal (the name usually says
    which container asked); the first name is kept with the number of the others.
    """
    groups: Dict[str, Dict[str, Tuple[Dict[str, Any], List[str], List[int]]]] = {"host": {}, "container-spec": {}}
    for where, f, task in entries:
        body = {k: v for k, v in task.items() if k != "tags"}
        ident = json.dumps({k: v for k, v in body.items() if k != "name"}, sort_keys=True, default=str)
        tags = _tags(task)
        for extra in [f["rule"]] + (["container-spec", "never"] if where == "container-spec" else []):
            if extra not in tags:
                tags.append(extra)
        if ident in groups[where]:
            dummy, seen, merged = groups[where][ident]
            seen.extend(t for t in tags if t not in seen)
            merged[0] += 1
        else:
            groups[where][ident] = (body, tags, [0])
    out: Dict[str, List[Dict[str, Any]]] = {}
    for where, group in groups.items():
        out[where] = []
        for body, tags, merged in group.values():
            if merged[0] and isinstance(body.get("name"), str):
                body = dict(body, name="%s (and %d more finding%s)" % (body["name"], merged[0],
                                                                      "s" if merged[0] > 1 else ""))
            out[where].append(_ordered(body, tags))
    return out


def _collect(findings: List[Mapping[str, Any]], problems: List[str]
             ) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]], SpecEntries]:
    """Host-side tasks (each after its diff preview), container-spec tasks (merged per container,
    :func:`_merge_spec_tasks`) and the Kubernetes entries of one host, which :func:`k8s_play`
    merges across the fleet."""
    host, spec, k8s = _accepted(findings, problems)
    entries = host + [("container-spec", f, task) for f, task in _merge_spec_tasks(spec, problems)]
    grouped = _dedupe(entries)
    host_tasks: List[Dict[str, Any]] = []
    for task in grouped["host"]:
        preview = _diff_preview(task)
        host_tasks.extend(preview)
        if preview:
            # a change the preview showed (and counted) is not counted twice
            task = dict(task, register=_HOST_RESULT,
                        changed_when=_Template("%s.changed and not (%s.changed | default(false))"
                                               % (_HOST_RESULT, _PREVIEW_SHOWN)))
            task = _ordered(task, task["tags"])
        host_tasks.append(task)
    return host_tasks, grouped["container-spec"], k8s


def _value_pattern(value: str) -> str:
    """The fields of ``value`` as ansible.posix.sysctl compares them (whitespace-split)."""
    return r"\s+".join(re.escape(field) for field in value.split()) or "''"


def _diff_preview(task: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """A diff for ``--diff`` runs of an ``ansible.posix.sysctl`` task, which has none of its own
    (ansible.posix 2.1): the same line in the same file through ``lineinfile``, always in check
    mode, so it can never write. ansible.posix.sysctl writes only when the file's value differs
    (compared without the blanks around ``=``), so a first look finds a line that already has the
    value and the preview is skipped then: ``key = 1024`` is never shown rewritten to
    ``key=1024``. Runs only when a diff is asked for."""
    args = task.get("ansible.posix.sysctl")
    if not isinstance(args, Mapping) or args.get("state", "present") != "present" or not args.get("sysctl_file"):
        return []
    key, value = str(args.get("name")), rem.task_value(args.get("value"))
    tags = [t for t in task.get("tags", []) if t not in ("never",)]
    name = "Diff of %s for %s (check mode, never writes)" % (args["sysctl_file"], key)
    return [{
        "name": "Is %s already in %s (check mode, never writes)" % (key, args["sysctl_file"]),
        "ansible.builtin.lineinfile": {"path": args["sysctl_file"], "state": "absent",
                                       "regexp": r"^\s*%s\s*=\s*%s\s*$" % (re.escape(key), _value_pattern(value))},
        "check_mode": True,
        "changed_when": False,
        "failed_when": False,
        "register": _PREVIEW_FOUND,
        "when": "ansible_diff_mode",
        "tags": list(tags),
    }, {
        "name": name,
        "ansible.builtin.lineinfile": {"path": args["sysctl_file"], "regexp": r"^\s*%s\s*=" % re.escape(key),
                                       "line": "%s=%s" % (key, value), "create": True, "mode": "0644"},
        "check_mode": True,
        "register": _PREVIEW_SHOWN,
        "when": ["ansible_diff_mode", "(%s.found | default(0) | int) == 0" % _PREVIEW_FOUND],
        "tags": list(tags),
    }]


def _is_preview(task: Mapping[str, Any]) -> bool:
    return task.get("register") in (_PREVIEW_FOUND, _PREVIEW_SHOWN)


TARGETS_VAR = "nsguard_sysctl_remediation_hosts"


def _remediated_hosts(model: Mapping[str, Any]) -> List[str]:
    """Hosts with at least one host-side or container-spec task, in report order."""
    hosts: List[str] = []
    for host, findings in iter_findings_by_host(model):
        for f in findings:
            remediation = f.get("remediation")
            if (isinstance(remediation, Mapping) and remediation.get("where") in ("host", "container-spec")
                    and remediation.get("tasks")):
                hosts.append(host)
                break
    return hosts


def inspect_play(hosts: List[str]) -> Dict[str, Any]:
    """The first play: on every remediated host at once (forks apply), read what the guards need.

    Registered variables and facts persist across the plays of one run, so the per-host plays
    that follow only run their own tasks. Tagged always: --tags never skips the guard's input.
    """
    return {
        "name": "nsguard.sysctl remediation: inspect the targets",
        "hosts": "all",   # host names may hold pattern characters; filtered by the list below
        "gather_facts": False,
        "vars": {TARGETS_VAR: hosts},
        "tasks": [
            {"name": "Only the hosts this playbook remediates", "ansible.builtin.meta": "end_host",
             "when": "inventory_hostname not in %s" % TARGETS_VAR, "tags": ["always"]},
            # host-side tasks run only in the initial pid and user namespaces (HOST_GUARD)
            {"name": "Namespaces of the target", "ansible.builtin.stat": {
                "path": _Template("/proc/self/ns/{{ item }}"), "follow": True, "get_checksum": False, "get_mime": False,
                "get_attributes": False}, "loop": ["pid", "user"], "register": NS_VAR, "tags": ["always"]},
            # the findings' own conditions may read these
            {"name": "Virtualization facts", "ansible.builtin.setup": {"gather_subset": ["!all", "!min", "virtual"]},
             "tags": ["always"]},
        ],
    }


def _refusal_task(host_tasks: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Says why the host-side block is skipped where the guard is false, in the output of a
    normal run (a skipped block alone says nothing). Tagged always and with the block's rules."""
    count = sum(1 for task in host_tasks if not _is_preview(task))
    rules = [t for task in host_tasks for t in task["tags"] if re.fullmatch(r"NSG\d+|[A-Z]+\d+", t)]
    inodes = "%s.results | default([]) | map(attribute='stat.inode', default='unknown') | list" % NS_VAR
    return {
        "name": "Refuse host-side sysctl changes inside a container",
        "ansible.builtin.debug": {"msg": _Template(
            "nsguard.sysctl: %d host-side sysctl change%s NOT applied to {{ inventory_hostname }}: its pid and user "
            "namespaces {{ %s }} are not the kernel's initial ones [%d, %d], so it is a container or runs in one, "
            "where a global sysctl either fails or changes the host for every container. Run this play against "
            "the container's host." % (count, "" if count == 1 else "s", inodes, INIT_PID_NS, INIT_USER_NS))},
        "when": "not (%s)" % HOST_GUARD,
        "tags": ["always"] + list(dict.fromkeys(rules)),
    }


def iter_plays(model: Mapping[str, Any], problems: List[str], k8s: Optional[SpecEntries] = None
               ) -> Iterator[Dict[str, Any]]:
    """One play per host with remediation tasks, in host order; refused tasks go to ``problems``.
    Kubernetes entries are appended to ``k8s`` (for :func:`k8s_play`), not put in a host's play."""
    for host, findings in iter_findings_by_host(model):
        if not findings:
            continue
        host_tasks, spec_tasks, k8s_entries = _collect(findings, problems)
        if k8s is not None:
            k8s.extend(k8s_entries)
        if not host_tasks and not spec_tasks:
            continue
        tasks: List[Dict[str, Any]] = []
        if host_tasks:
            tasks.append(_refusal_task(host_tasks))
            tasks.append({"name": "Host-side sysctl changes (never inside a container)",
                          "when": HOST_GUARD, "block": host_tasks})
        if spec_tasks:
            tasks.append({"name": "Container spec changes (run only with --tags <rule id> or container-spec)",
                          "block": spec_tasks})
        play: Dict[str, Any] = {"name": "nsguard.sysctl remediation for %s" % host}
        if _PLAIN_HOST.match(host):
            play["hosts"] = host
        else:
            # a name with pattern characters (":", "*", ",", "!", "&", "[") must not be read as a
            # pattern: target all and end every other host before anything connects
            play["hosts"] = "all"
            play["vars"] = {"nsguard_sysctl_remediation_target": host}
            tasks.insert(0, {"name": "Keep only the host this play is for", "ansible.builtin.meta": "end_host",
                             "when": "inventory_hostname != nsguard_sysctl_remediation_target", "tags": ["always"]})
        play.update({"gather_facts": False, "tasks": tasks})
        yield play


def k8s_play(entries: SpecEntries, problems: List[str]) -> Optional[Dict[str, Any]]:
    """The Kubernetes patches of the whole fleet, once each, as API calls from the controller
    (``hosts: localhost``, ``connection: local``: kubernetes.core.k8s talks to the API server
    with the controller's kubeconfig). Patches of one workload's pod template from several
    nodes are merged like a container's spec tasks."""
    if not entries:
        return None
    merged = _merge_spec_tasks(entries, problems)
    tasks = _dedupe([("container-spec", f, task) for f, task in merged])["container-spec"]
    return {"name": "nsguard.sysctl remediation: Kubernetes pod templates (API calls from the controller)",
            "hosts": "localhost", "connection": "local", "gather_facts": False,
            "tasks": [{"name": "Pod template changes (run only with --tags <rule id> or container-spec)",
                       "block": tasks}]}


def build_plays(model: Mapping[str, Any]) -> Tuple[List[Dict[str, Any]], List[str]]:
    problems: List[str] = []
    k8s: SpecEntries = []
    plays = list(iter_plays(model, problems, k8s))
    last = k8s_play(k8s, problems)
    hosts = _remediated_hosts(model)
    return ([inspect_play(hosts)] if hosts else []) + plays + ([last] if last else []), problems


def _dump_play(play: Dict[str, Any], out: IO[str]) -> None:
    # one play at a time: each dump is "- name: ...", and consecutive ones form one YAML list,
    # so a 2,000-host playbook never exists as one node graph in memory. The last step before
    # the file: every Jinja-looking string of the play becomes !unsafe here (_protect).
    yaml.dump([_protect(play)], out, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
              allow_unicode=True, width=120, explicit_start=False)


def render_remediation(model: Mapping[str, Any], out: IO[str]) -> None:
    out.write("---\n")
    out.write("# nsguard.sysctl remediation playbook, generated %s from %s.\n" % (
        clean_text(model["generated_at"]), "the play" if model["source"] == "play" else "the fact cache"))
    out.write("# Review first:  ansible-playbook -i INVENTORY remediation.yml --check --diff --become\n")
    out.write("# One rule only:  --tags NSG001   Container spec changes run only when their tag is asked for.\n")
    not_ok = [row for row in model["hosts"] if row["status"] != "ok"]
    if not_ok:
        out.write("# Hosts not audited (nothing generated for them):\n")
        for row in not_ok:
            out.write("#   %s: %s%s\n" % (clean_text(row["name"]), row["status"],
                                          ": " + clean_text(row["message"]) if row["message"] else ""))
    problems: List[str] = []
    count = 0
    hosts = _remediated_hosts(model)
    if hosts:
        _dump_play(inspect_play(hosts), out)
    k8s: SpecEntries = []
    for play in iter_plays(model, problems, k8s):
        _dump_play(play, out)
        count += 1
    last = k8s_play(k8s, problems)
    if last:
        _dump_play(last, out)
        count += 1
    if not count:
        _dump_play({"name": "nsguard.sysctl: nothing to remediate", "hosts": "localhost", "gather_facts": False,
                    "tasks": [{"name": "Nothing to remediate",
                               "ansible.builtin.debug": {"msg": "no findings with remediation tasks"}}]}, out)
    for problem in problems:
        out.write("# skipped: %s\n" % clean_text(problem))
