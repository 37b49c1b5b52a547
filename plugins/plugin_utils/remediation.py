# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Render remediation tasks: plain Ansible task dicts, ready for a play.

A finding is fixed where the setting lives:

* a global key (and a host-only key, which is global too) on the **host**, with
  ``ansible.posix.sysctl`` and a file under ``/etc/sysctl.d/`` so that it survives a reboot;
* a per-namespace key in the **container's own spec**: ``community.docker.docker_container``
  ``sysctls``, ``containers.podman.podman_container`` ``sysctl``, a Kubernetes pod template
  ``securityContext.sysctls`` patch through ``kubernetes.core.k8s``, or an LXC config line.

Host tasks carry :data:`HOST_GUARD`, which keeps them from ever running inside a container
(from a container a global write either fails or changes the host for every other container,
and the sysctl.d file would land in the container's filesystem). The guard trusts, in order:

1. the nsguard facts, when they were gathered: the kernel gives the initial user and PID
   namespaces fixed inode numbers (``PROC_USER_INIT_INO`` 0xEFFFFFFD = 4026531837 and
   ``PROC_PID_INIT_INO`` 0xEFFFFFFC = 4026531836, include/linux/proc_ns.h, stable since 3.8), so
   "our process is in both" is a fact, not a guess;
   or, the same inode numbers from a registered ``stat`` of ``/proc/self/ns/{pid,user}``
   (:data:`NS_STAT_VAR`, which the fleet remediation playbook registers first);
2. otherwise Ansible's virtual facts: no ``container`` among ``virtualization_tech_guest``
   and no container type as a *guest* role. A container host that is itself a VM (role
   ``guest``, type ``kvm``) passes; an OpenVZ host (type ``openvz``, role ``host``) passes;
3. no facts at all: the task is skipped (fail closed).

Ansible's virtual facts alone are not enough: they call any machine with a stray
``/.dockerenv`` a docker guest (a VM whose image was built with docker, like this project's
test machine) and miss podman containers that are not run as root.

Container-spec tasks for docker, podman and Kubernetes recreate the container (or roll the
workload) from the options they are given, so they run only when
``nsguard_sysctl_container_spec_apply`` is true; they are meant to be merged into the task,
Compose file or manifest that defines the container.

Plain Python, no Ansible import.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

# The container-spec vocabulary (modules, their sysctl options, pod-template paths, pod owners)
# is container_specs', shared with the ansible-lint rules and render_remediation.
from .container_specs import ENGINE_MODULES, K8S_MODULE, SYSCTL_OPTIONS, pod_owner, with_pod_spec
from .vocabulary import identity_name

__all__ = [
    "CONTAINER_GUEST_TYPES",
    "HOST_GUARD",
    "K8S_MODULE",
    "NETNS_CHANGED",
    "NETNS_RESULT_VAR",
    "NETNS_SCRIPT",
    "NS_STAT_VAR",
    "SPEC_GUARD",
    "SYSCTL_OPTIONS",
    "RemediationOptions",
    "host_sysctl_task",
    "sysctl_file_for",
    "container_sysctl_tasks",
    "container_privilege_tasks",
    "remediation",
    "task_value",
    "where_tag",
]

# What Ansible's setup module reports as virtualization_type for a container guest
# (ansible/module_utils/facts/virtual/linux.py plus /run/systemd/container values).
CONTAINER_GUEST_TYPES = ("docker", "lxc", "openvz", "podman", "container", "containerd",
                         "systemd-nspawn", "rkt", "wsl")

PROC_USER_INIT_INO = 4026531837
PROC_PID_INIT_INO = 4026531836

# The registered result of stat'ing /proc/self/ns/{pid,user} on the target (the fleet
# remediation playbook, plugin_utils/render_remediation.py, runs that first): the same fact as the
# nsguard facts give, without gathering them.
NS_STAT_VAR = "nsguard_sysctl_remediation_ns"

HOST_GUARD = (
    "(ansible_facts.nsguard_sysctl.host.ns.user | default(0) | int == %(user)d"
    " and ansible_facts.nsguard_sysctl.host.ns.pid | default(0) | int == %(pid)d)"
    " if ansible_facts.nsguard_sysctl.host.ns is defined else"
    " ((%(stat)s.results | map(attribute='stat.inode', default=0) | map('int') | sort | list) == [%(pid)d, %(user)d])"
    " if %(stat)s.results is defined else"
    " (ansible_facts.virtualization_type is defined"
    " and 'container' not in (ansible_facts.virtualization_tech_guest | default([]))"
    " and not (ansible_facts.virtualization_role | default('') == 'guest'"
    " and ansible_facts.virtualization_type in %(types)s))"
) % {"user": PROC_USER_INIT_INO, "pid": PROC_PID_INIT_INO, "stat": NS_STAT_VAR,
     "types": "[" + ", ".join("'%s'" % t for t in CONTAINER_GUEST_TYPES) + "]"}

SPEC_GUARD = "nsguard_sysctl_container_spec_apply | default(false) | bool"
# The netns task's registered result and the condition that reads it (NETNS_SCRIPT's output).
NETNS_RESULT_VAR = "nsguard_sysctl_netns_result"
NETNS_CHANGED = "'changed ' in %s.stdout" % NETNS_RESULT_VAR

_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")
_PLAIN_FILE_PREFIX = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class RemediationOptions:
    """Where host files go and how container specs are addressed."""

    sysctl_d_dir: str = "/etc/sysctl.d"
    file_prefix: str = "90"
    lxc_path: str = "/var/lib/lxc"
    reload: bool = True

    def __post_init__(self) -> None:
        # file_prefix becomes part of a file name under sysctl_d_dir: "../../../root/.bashrc#"
        # would put the host task's file anywhere. A plain name component only.
        if not isinstance(self.file_prefix, str) or not _PLAIN_FILE_PREFIX.match(self.file_prefix):
            raise ValueError("remediation.file_prefix must be a plain file name prefix (letters, digits, '_', "
                             "'-', '.', not starting with '.'), not %r" % (self.file_prefix,))
        for name in ("sysctl_d_dir", "lxc_path"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.startswith("/") or "/../" in value + "/":
                raise ValueError("remediation.%s must be an absolute path without '..', not %r" % (name, value))
        if not isinstance(self.reload, bool):
            raise ValueError("remediation.reload must be true or false, not %r" % (self.reload,))

    @classmethod
    def from_mapping(cls, data: Optional[Mapping[str, Any]]) -> "RemediationOptions":
        data = dict(data or {})
        unknown = sorted(set(data) - {"sysctl_d_dir", "file_prefix", "lxc_path", "reload"})
        if unknown:
            raise ValueError("unknown remediation option(s): %s" % ", ".join(unknown))
        return cls(**data)


def task_value(value: Any) -> str:
    """A sysctl value as a task argument: fields separated by one space (``sysctl -n`` prints
    tabs; ansible.posix.sysctl and the runtimes compare whitespace-split fields)."""
    return " ".join(str(value).split())


def sysctl_file_for(key: str, persisted: Optional[Mapping[str, Any]] = None,
                    options: RemediationOptions = RemediationOptions()) -> str:
    """The file the host task writes.

    If the key is already persisted in a file the administrator owns (``/etc/sysctl.conf`` or
    the configured sysctl.d directory), fix it there: a second file would leave two values and
    the later one in systemd-sysctl's order wins. Otherwise a file of our own, named to sort
    after any vendor file (``/usr/lib``, ``/run``) that persists the key, so ours is applied last.
    """
    entry = ((persisted or {}).get("keys") or {}).get(key) or {}
    source = entry.get("file") if isinstance(entry, Mapping) else None
    own_dir = options.sysctl_d_dir.rstrip("/") or "/"
    if source and (os.path.dirname(source) == own_dir or source == "/etc/sysctl.conf"):
        return source
    safe_key = _SAFE_NAME.sub("_", key)
    name = "%s-nsguard-%s.conf" % (options.file_prefix, safe_key)
    if source and os.path.basename(source) >= name:
        # systemd-sysctl applies files in name order, the last one wins: "<stem>.zz-..." sorts
        # right after "<stem>.conf" whatever the stem is
        stem = os.path.basename(source)
        stem = stem[:-len(".conf")] if stem.endswith(".conf") else stem
        name = "%s.zz-nsguard-%s.conf" % (stem, safe_key)
    return os.path.join(own_dir, name)


def where_tag(where: str) -> str:
    """The tag that says where a task acts (``nsguard_host``, ``nsguard_container_spec``)."""
    return "nsguard_%s" % where.replace("-", "_")


def _tags(rule: str, where: str) -> List[str]:
    return ["nsguard", rule, where_tag(where)]


def host_sysctl_task(rule: str, key: str, value: Any, *, persisted: Optional[Mapping[str, Any]] = None,
                     options: RemediationOptions = RemediationOptions(), why: str = "",
                     reload: Optional[bool] = None, sysctl_file: Optional[str] = None) -> Dict[str, Any]:
    """``ansible.posix.sysctl`` on the host: set now, persist in sysctl.d, never from a container."""
    value = task_value(value)
    name = "%s %s=%s on the host" % (rule, key, value)
    if why:
        name += " (%s)" % why
    return {
        "name": name,
        "ansible.posix.sysctl": {
            "name": key,
            "value": value,
            "state": "present",
            "sysctl_file": sysctl_file or sysctl_file_for(key, persisted, options),
            "sysctl_set": True,
            "reload": options.reload if reload is None else reload,
        },
        "when": HOST_GUARD,
        "tags": _tags(rule, "host"),
    }


def _label(identity: Mapping[str, Any]) -> str:
    """The container's name in a task's name: the vocabulary's one naming of an identity."""
    return identity_name(identity) or "unidentified"


def _merged(requested: Optional[Mapping[str, Any]], set_to: Mapping[str, Any]) -> Dict[str, str]:
    """The container's full sysctl map after the change (a value of None removes a key):
    runtimes replace the whole map, so keep what the container already asks for."""
    merged = {k: task_value(v) for k, v in (requested or {}).items()}
    for key, value in set_to.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = task_value(value)
    return dict(sorted(merged.items()))


def _describe(set_to: Mapping[str, Any]) -> str:
    parts = ["%s=%s" % (k, task_value(v)) if v is not None else "without %s" % k for k, v in set_to.items()]
    return ", ".join(parts)


_K8S_RUNTIMES = ("containerd", "cri-o", "crio", "docker", "kubernetes")


def _is_pod(identity: Mapping[str, Any]) -> bool:
    runtime = (identity.get("runtime") or "unknown").lower()
    return bool(identity.get("pod_name")) and runtime in _K8S_RUNTIMES


def _k8s_patch_task(rule: str, identity: Mapping[str, Any], pod_spec: Mapping[str, Any], what: str) -> Dict[str, Any]:
    """A strategic-merge patch of the pod template of the pod's (guessed) owner."""
    owner = pod_owner(str(identity["pod_name"]), identity.get("labels"))
    namespace = identity.get("pod_namespace") or "default"
    definition = with_pod_spec({}, pod_spec, owner["kind"])
    return {
        "name": "%s %s in the pod template of %s %s/%s" % (rule, what, owner["kind"], namespace, owner["name"]),
        K8S_MODULE: {
            "state": "patched",
            "api_version": owner["api_version"],
            "kind": owner["kind"],
            "name": owner["name"],
            "namespace": namespace,
            "definition": definition,
        },
        # no delegate_to: the fleet playbook runs every k8s task in a play of its own on the
        # controller (render_remediation), and no finding's task carries connection keywords
        "when": SPEC_GUARD,
        "tags": _tags(rule, "container-spec"),
    }


def _engine_task(rule: str, identity: Mapping[str, Any], runtime: str, what: str,
                 options: Mapping[str, Any]) -> Dict[str, Any]:
    """docker_container / podman_container for an existing container, recreated with ``options``."""
    module_args: Dict[str, Any] = {"name": identity["name"], "state": "started"}
    if identity.get("image"):
        module_args["image"] = identity["image"]
    module_args.update(options)
    return {
        "name": "%s %s in the spec of %s container %s" % (rule, what, runtime, _label(identity)),
        ENGINE_MODULES[runtime]: module_args,
        "when": SPEC_GUARD,
        "tags": _tags(rule, "container-spec"),
    }


def container_sysctl_tasks(rule: str, identity: Mapping[str, Any], set_to: Mapping[str, Any], *,
                           requested: Optional[Mapping[str, Any]] = None,
                           options: RemediationOptions = RemediationOptions(),
                           engine_defaults: Sequence[str] = (),
                           never: Iterable[str] = ()) -> List[Dict[str, Any]]:
    """Tasks that put ``set_to`` (key -> value, or None to drop the key) into the container's
    own spec, keeping what it already asks for except the keys its engine adds on its own
    (``engine_defaults``: Docker and Podman set ping_group_range and ip_unprivileged_port_start).

    ``never``: keys that must not be in the container's spec at all, whoever asked for them:
    keys that are global on this host (global, mirror, host-only, leaking) and keys of a
    namespace the container shares with the host. A container that sets one changes (or fails
    to change) the host's value for everybody. Docker, Podman and Kubernetes replace the whole
    sysctl map, so a task that kept such a request while fixing another key would write it
    again; they are dropped from the map, and a ``set_to`` value for one gives no task.

    Returns ``[]`` when the runtime has no spec Ansible can edit (unidentified processes, runc
    bundles, systemd-nspawn) or nothing safe is left to set; the finding's message says where
    to fix it."""
    runtime = (identity.get("runtime") or "unknown").lower()
    label = _label(identity)
    never = set(never)
    unsafe = [k for k, v in set_to.items() if v is not None and k in never]
    if unsafe:
        return []
    what = _describe(set_to)
    own = {k: v for k, v in (requested or {}).items()
           if (k not in set(engine_defaults) or k in set_to) and k not in never}
    merged = _merged(own, set_to)
    tags = _tags(rule, "container-spec")
    if _is_pod(identity):
        sysctls = [{"name": k, "value": v} for k, v in merged.items()]
        return [_k8s_patch_task(rule, identity, {"securityContext": {"sysctls": sysctls}}, what)]
    if runtime in ENGINE_MODULES and identity.get("name"):
        return [_engine_task(rule, identity, runtime, what, {SYSCTL_OPTIONS[ENGINE_MODULES[runtime]]: merged})]
    if runtime == "lxc" and identity.get("name"):
        path = os.path.join(options.lxc_path, str(identity["name"]), "config")
        tasks = []
        for key, value in set_to.items():
            line_re = r"^\s*lxc\.sysctl\.%s\s*=" % re.escape(key)
            args: Dict[str, Any] = {"path": path, "regexp": line_re}
            if value is None:
                args["state"] = "absent"
                title = "%s without lxc.sysctl.%s in the config of LXC container %s" % (rule, key, label)
            else:
                args.update({"line": "lxc.sysctl.%s = %s" % (key, task_value(value)), "state": "present"})
                title = "%s lxc.sysctl.%s = %s in the config of LXC container %s" % (
                    rule, key, task_value(value), label)
            tasks.append({"name": title, "ansible.builtin.lineinfile": args, "tags": tags})
        return tasks
    if (runtime == "netns" and identity.get("netns_name") and set_to
            and all(v is not None and k.startswith("net.") for k, v in set_to.items())):
        # A named network namespace has no spec: the fix belongs in whatever creates it; this
        # applies it to the running namespace. `ip netns exec` enters the network namespace
        # only, so only net.* keys (any other key would be the host's). The host's sh compares
        # first and writes only what differs, so a second run changes nothing; keys and values
        # are arguments, never part of the script. Check mode skips it (command module).
        return [{
            "name": "%s %s in network namespace %s" % (rule, what, identity["netns_name"]),
            "ansible.builtin.command": {
                "argv": ["ip", "netns", "exec", str(identity["netns_name"]), "sh", "-c", NETNS_SCRIPT, "nsguard"]
                + ["%s=%s" % (k, task_value(v)) for k, v in set_to.items()],
            },
            "register": NETNS_RESULT_VAR,
            "changed_when": NETNS_CHANGED,
            "tags": tags,
        }]
    return []


# Sets each KEY=VALUE argument unless the namespace already has it (fields compared the way
# task_value writes them); prints "changed KEY: OLD -> NEW" for each write, fails on the first
# error with sysctl's message.
NETNS_SCRIPT = (
    'set -f; for kv do k=${kv%%=*}; v=${kv#*=}; old=$(sysctl -n "$k") || exit 1; '
    'cur=$(echo $old); want=$(echo $v); [ "$cur" = "$want" ] && continue; '
    'sysctl -w "$kv" >/dev/null || exit 1; echo "changed $k: $cur -> $want"; done')


_PRIV_CAPS = ("SYS_ADMIN", "NET_ADMIN")


def container_privilege_tasks(rule: str, identity: Mapping[str, Any], *, privileged: bool,
                              proc_sys_rw: bool, caps: Iterable[str] = (),
                              options: RemediationOptions = RemediationOptions()) -> List[Dict[str, Any]]:
    """Tasks that take away a container's means of writing global sysctls (NSG006)."""
    runtime = (identity.get("runtime") or "unknown").lower()
    label = _label(identity)
    caps = sorted({c.upper().replace("CAP_", "") for c in caps} & set(_PRIV_CAPS))
    tags = _tags(rule, "container-spec")
    if _is_pod(identity):
        ctx: Dict[str, Any] = {"privileged": False, "allowPrivilegeEscalation": False}
        if caps:
            ctx["capabilities"] = {"drop": caps}
        if proc_sys_rw:
            ctx["procMount"] = "Default"
        container_name = (identity.get("labels") or {}).get("io.kubernetes.container.name") or identity.get("name")
        return [_k8s_patch_task(rule, identity, {"containers": [{"name": container_name, "securityContext": ctx}]},
                                "unprivileged container %s" % container_name)]
    if runtime in ENGINE_MODULES and identity.get("name"):
        options_: Dict[str, Any] = {"privileged": False}
        if caps:
            options_["cap_drop"] = caps
        return [_engine_task(rule, identity, runtime, "unprivileged", options_)]
    if runtime == "lxc" and identity.get("name"):
        path = os.path.join(options.lxc_path, str(identity["name"]), "config")
        tasks = [{
            "name": "%s /proc/sys read-only (proc:mixed) for LXC container %s" % (rule, label),
            "ansible.builtin.lineinfile": {
                "path": path,
                "regexp": r"^\s*lxc\.mount\.auto\s*=",
                "line": "lxc.mount.auto = proc:mixed sys:mixed cgroup:mixed",
                "state": "present",
            },
            "tags": tags,
        }]
        if caps:
            tasks.append({
                "name": "%s drop %s for LXC container %s" % (rule, " ".join(c.lower() for c in caps), label),
                "ansible.builtin.lineinfile": {
                    "path": path,
                    "regexp": r"^\s*lxc\.cap\.drop\s*=\s*%s\s*$" % re.escape(" ".join(c.lower() for c in caps)),
                    "line": "lxc.cap.drop = %s" % " ".join(c.lower() for c in caps),
                    "state": "present",
                },
                "tags": tags,
            })
        return tasks
    return []


def remediation(where: str, tasks: List[Dict[str, Any]], note: str = "") -> Dict[str, Any]:
    """The ``remediation`` field of a finding."""
    out: Dict[str, Any] = {"where": where, "tasks": tasks}
    if note:
        out["note"] = note
    return out
