"""Judge a sysctl that a container spec asks for, without a host: the kernel-floor policy.

Static lint (ansible-lint rules, CI) has no kernel to probe. It judges each key with the
knowledge base alone (:func:`classify.scope`) against a *kernel floor*: the oldest kernel the
user says they run (default 4.18). The policy, from DESIGN.md "Judging without a host":

- namespaced at the floor and on every later kernel: fine;
- global, a read-only mirror, host-only or leaking at the floor *and* on the latest known
  kernel: an error (nothing between the floor and the latest kernel can make it the
  container's own);
- namespaced on one side of a kernel gate only: a warning that names the version;
- rejected by every runtime that could run the spec (``kernel.pid_max``, ``kernel.hostname``):
  an error even where the kernel namespaces the key;
- a namespaced key in a namespace the container shares with the host (host network, host IPC):
  an error (runc refuses it; it would be the host's own setting);
- a key outside the kubelet's safe set in a Pod: a warning (it needs
  ``--allowed-unsafe-sysctls``, which a linter cannot see).

Everything here is plain Python over the knowledge base: no ansible, no ansible-lint, so the
same verdicts serve the ansible-lint rules, tests and any other static consumer.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, List, Mapping, Optional, Sequence, Tuple

import yaml

# Imported here, not lazily: a lazy import of a sibling can run under another import regime
# (ansible's collection finder installed after this package was imported from sys.path) and fail.
from .classify import scope as knowledge_scope
from .remediation import host_sysctl_task
from .versions import KernelVersionError, format_kernel, parse_kernel

DEFAULT_FLOOR = "4.18"
# Environment variables, because ansible-lint's config schema refuses per-rule options.
FLOOR_ENV = "NSGUARD_SYSCTL_KERNEL_FLOOR"

NAMESPACED = frozenset({"isolated", "isolated-inherited"})
NOT_NAMESPACED = frozenset({"global", "mirror", "host-only", "leaking"})

# Reasons a verdict can carry; each ansible-lint rule reports a subset.
GLOBAL = "global"                  # global / mirror / leaking on every kernel since the floor
ABSENT = "host-only"               # absent from a container's namespace on every kernel since the floor
REJECTED = "runtime-rejected"      # every runtime that could run the spec refuses the key
HOST_NAMESPACE = "host-namespace"  # namespaced, but the spec shares that namespace with the host
KERNEL_GATED = "kernel-gated"      # namespaced on one side of a kernel gate only
KUBELET_UNSAFE = "kubelet-unsafe"  # outside the kubelet's safe set

_CLASS_WORDS = {
    "global": "global (one value for the whole host)",
    "mirror": "a read-only mirror of the host's value inside a container",
    "host-only": "absent from a container's namespace (it exists on the host only)",
    "leaking": "writable inside a container, and the write changes the host",
    "isolated": "per namespace",
    "isolated-inherited": "per namespace (copied from the host when the namespace is made)",
}
_NAMESPACE_FIELD = {
    "net": "its own network namespace",
    "ipc": "its own IPC namespace",
    "uts": "its own UTS namespace",
    "user": "its own user namespace",
    "pid": "its own PID namespace",
}
_JINJA = re.compile(r"{{|{%|{#")


class FloorError(ValueError):
    """The kernel floor option is not a kernel version."""


@dataclass(frozen=True)
class Verdict:
    """One problem with one key in one spec. ``level`` is ``error`` or ``warning``."""

    key: str
    reason: str
    level: str
    message: str
    klass: Optional[str] = None        # class at the floor
    namespace: Optional[str] = None
    since: Optional[str] = None        # the kernel version a gate names
    runtime: Optional[str] = None      # the runtime whose refusal is quoted
    runtime_error: Optional[str] = None
    evidence: Optional[str] = None
    scope: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)


@dataclass(frozen=True)
class SpecContext:
    """What the linter knows about the spec that asks for the key.

    ``runtimes``: the runtimes that could run it (``("docker",)`` for docker_container,
    ``("docker", "podman")`` for a Compose file, ``("kubelet",)`` for a Pod); empty when no
    runtime validates the key (``ansible.posix.sysctl`` over a container connection).
    ``host_namespaces``: namespaces shared with the host (``{"net"}`` for host networking).
    ``where``: a short human description of the spec, used in messages.
    """

    runtimes: Tuple[str, ...] = ()
    host_namespaces: frozenset = frozenset()
    kubelet: bool = False
    where: str = "this container spec"
    direct_write: bool = False  # the key is written from inside the container (sysctl task)


def is_templated(value: Any) -> bool:
    """True for a Jinja template (``"{{ var }}"``); such keys cannot be judged statically."""
    return isinstance(value, str) and bool(_JINJA.search(value))


def normalize_key(name: Any) -> Optional[str]:
    """A sysctl name in dotted form, or ``None`` when it cannot be one (templated, not a string).

    Kubernetes (since 1.23) and ``sysctl(8)`` also accept ``/`` separators: when the first
    separator is ``/``, ``/`` and ``.`` swap roles (``net/ipv4/conf/eth0.100/rp_filter`` is
    ``net.ipv4.conf.eth0/100.rp_filter``).
    """
    if not isinstance(name, str):
        return None  # YAML made a number or a mapping of it: not a sysctl name
    text = name.strip()
    if not text or is_templated(text) or any(c.isspace() for c in text):
        return None
    slash, dot = text.find("/"), text.find(".")
    if slash != -1 and (dot == -1 or slash < dot):
        text = text.translate(str.maketrans("/.", "./"))
    return text if "." in text.strip(".") else None


def parse_floor(text: Optional[str] = None) -> str:
    """The kernel floor as ``X.Y[.Z]``: ``text``, else ``$NSGUARD_SYSCTL_KERNEL_FLOOR``, else 4.18."""
    origin = "kernel floor"
    if text is None:
        text = os.environ.get(FLOOR_ENV) or DEFAULT_FLOOR
        origin = FLOOR_ENV if os.environ.get(FLOOR_ENV) else origin
    try:
        return format_kernel(parse_kernel(str(text)))
    except KernelVersionError as exc:
        raise FloorError(f"{origin}={text!r} is not a kernel version such as 4.18 or 5.14.0") from exc


def _is_ns(klass: Optional[str]) -> bool:
    return klass in NAMESPACED


def _describe(klass: Optional[str]) -> str:
    return _CLASS_WORDS.get(klass or "", klass or "unknown")


def _flip(kb: Any, name: str, floor: str, at_floor: Mapping[str, Any],
          scope: Callable[..., Mapping[str, Any]]) -> Tuple[Optional[str], Tuple[str, ...]]:
    """The first kernel after ``floor`` where the key's namespacing differs from the floor's,
    with that gate's stable backports. Walks the gates the classifier reports, oldest first."""
    was = _is_ns(at_floor.get("class"))
    current = at_floor
    for dummy in range(16):  # an entry has a handful of gates; the bound only guards odd input
        gate = current.get("gate") or {}
        if gate.get("reached") is not False or not gate.get("since"):
            break
        current = scope(kb, name, kernel=str(gate["since"]))
        if _is_ns(current.get("class")) != was:
            return str(gate["since"]), tuple(gate.get("backports") or ())
    gate = at_floor.get("gate") or {}
    return (str(gate["since"]) if gate.get("since") else None), tuple(gate.get("backports") or ())


def _runtime_refusals(sc: Mapping[str, Any], runtimes: Sequence[str]) -> List[Tuple[str, Optional[str]]]:
    """``[(runtime, error)]`` when *every* listed runtime refuses the key, else ``[]``."""
    known = sc.get("runtimes") or {}
    refusals = []
    for rt in runtimes:
        info = known.get(rt)
        if not isinstance(info, Mapping) or info.get("accepts", True):
            return []
        refusals.append((rt, info.get("error")))
    return refusals


def _effect(ctx: SpecContext, sc: Mapping[str, Any], klass: Optional[str]) -> str:
    """What happens when a spec like ``ctx`` asks for a key the container cannot own."""
    writable = klass in ("global", "leaking")
    if ctx.direct_write:
        return ("writing it from inside the container fails (read-only /proc/sys)"
                + (", or, in a privileged container, changes it for the whole host" if writable else ""))
    infos = [(rt, (sc.get("runtimes") or {}).get(rt) or {}) for rt in ctx.runtimes]
    refusing = [(rt, info.get("error")) for rt, info in infos if info and not info.get("accepts", True)]
    failing = [(rt, info.get("error")) for rt, info in infos
               if info and info.get("accepts", True) and info.get("applies") is False]
    if infos and len(refusing) == len(infos):
        rt, err = refusing[0]
        text = f"{rt} rejects it at deploy time" + (f' ("{err}")' if err else "")
    elif failing:
        rt, err = failing[0]
        text = f"{rt} accepts the name, but the container fails to start" + (f' ("{err}")' if err else "")
    else:
        text = "the container cannot own it"
    if writable:
        text += "; a privileged container that writes it changes it for every container on the host"
    return text


def assess(
    kb: Any,
    key: Any,
    ctx: SpecContext = SpecContext(),
    floor: Optional[str] = None,
    scope: Optional[Callable[..., Mapping[str, Any]]] = None,
    value: Any = None,
) -> List[Verdict]:
    """Every problem with asking for ``key`` in a spec like ``ctx``, on kernels from ``floor`` on.

    Returns ``[]`` for a key that is fine, and for a key that cannot be judged (templated,
    not a string, unknown to the knowledge base's classifier). Never raises on odd input.
    ``value`` only makes the quoted runtime errors exact.
    """
    name = normalize_key(key)
    if name is None:
        return []
    floor = parse_floor(floor) if floor is not None else parse_floor()
    scope = scope or knowledge_scope
    try:
        text = None if value is None or isinstance(value, (Mapping, list)) else str(value)
        at_floor = scope(kb, name, kernel=floor, value=text)
        latest = scope(kb, name, kernel=None, value=text)
    except (KeyError, ValueError, TypeError):  # a classifier that cannot place the key: no verdict
        return []
    k_floor, k_latest = at_floor.get("class"), latest.get("class")
    if k_floor is None or k_latest is None:
        return []
    namespace = latest.get("namespace") if _is_ns(k_latest) else at_floor.get("namespace")
    base = dict(klass=k_floor, namespace=namespace, evidence=latest.get("evidence"), scope=latest)
    since, backports = _flip(kb, name, floor, at_floor, scope) if k_floor != k_latest else (None, ())
    also = f" (stable backports: {', '.join(backports)})" if backports else ""

    # 1. A namespace the spec shares with the host: the key would be the host's own setting.
    shared = ctx.host_namespaces & {at_floor.get("namespace"), latest.get("namespace")}
    if shared and (_is_ns(k_floor) or _is_ns(k_latest)):
        ns = sorted(shared)[0]
        rt_err = None
        for rt in ctx.runtimes:
            info = (latest.get("runtimes") or {}).get(rt) or {}
            rt_err = info.get("error_host_namespace") or rt_err
        refused = f'the runtime refuses it ("{rt_err}")' if rt_err else "the runtime refuses it"
        msg = (f"{name} is per {ns} namespace, but {ctx.where} shares the host's {ns} namespace: "
               f"{refused}, and the setting would be the host's own. Set it on the host, "
               f"or give the container {_NAMESPACE_FIELD.get(ns, 'its own namespace')}.")
        return [Verdict(name, HOST_NAMESPACE, "error", msg, runtime_error=rt_err, **base)]

    # 2. Not namespaced anywhere from the floor on.
    if not _is_ns(k_floor) and not _is_ns(k_latest):
        reason = ABSENT if k_floor == "host-only" and k_latest == "host-only" else GLOBAL
        if k_floor == k_latest:
            what = f"{name} is {_describe(k_floor)} on every kernel since {floor}"
        else:
            what = (f"{name} is {_describe(k_floor)} on kernel {floor} and "
                    f"{_describe(k_latest)} from {since or 'a later kernel'} on; it is never the container's own")
        effect = _effect(ctx, latest, k_latest)
        msg = f"{what}: {effect}. Set it on the host and remove it from {ctx.where}."
        return [Verdict(name, reason, "error", msg, since=since, **base)]

    verdicts: List[Verdict] = []
    # 3. Refused by every runtime that could run the spec, namespaced or not.
    refusals = _runtime_refusals(at_floor, ctx.runtimes) or _runtime_refusals(latest, ctx.runtimes)
    if refusals:
        rt, err = refusals[0]
        names = " and ".join(r for r, dummy in refusals)
        quoted = f' ("{err}")' if err else ""
        fix = ("set it through the runtime's own option (hostname, domainname)" if namespace == "uts"
               else "set it on the host")
        msg = (f"{name} is refused by {names}{quoted} although the kernel keeps it "
               f"{_describe(k_latest)}: the container will not start. Remove it from {ctx.where} and {fix}.")
        return [Verdict(name, REJECTED, "error", msg, runtime=rt, runtime_error=err, **base)]

    # 4. A kernel gate between the floor and the latest kernel.
    if _is_ns(k_floor) != _is_ns(k_latest):
        gate = since or "a later kernel"
        if _is_ns(k_latest):
            msg = (f"{name} is namespaced only since kernel {gate}{also}; from {floor} up to {gate} it is "
                   f"{_describe(k_floor)}, so a container cannot own it there. Set it on the host, or "
                   f"raise the kernel floor ({FLOOR_ENV}={gate}) if every host runs {gate} or later.")
        else:
            msg = (f"{name} is {_describe(k_latest)} from kernel {gate}{also} on (per namespace before): "
                   f"on hosts with {gate} or later the container cannot own it. Set it on the host.")
        verdicts.append(Verdict(name, KERNEL_GATED, "warning", msg, since=gate, **base))

    # 5. The kubelet's safe set.
    if ctx.kubelet:
        kubelet = (at_floor.get("runtimes") or {}).get("kubelet") or {}
        if kubelet and not kubelet.get("safe", False) and kubelet.get("accepts", True):
            err = kubelet.get("error")
            msg = (f"{name} is not in the Kubernetes safe set: the kubelet rejects the pod (SysctlForbidden"
                   + (f': {err}' if err else "") + f") unless it runs with --allowed-unsafe-sysctls={name}; "
                   "the Pod Security baseline level also forbids it.")
            verdicts.append(Verdict(name, KUBELET_UNSAFE, "warning", msg, **base))
    return verdicts


def render_tasks(tasks: Iterable[Mapping[str, Any]]) -> str:
    """YAML text of a task list, ready to paste into a play."""
    return yaml.safe_dump(list(tasks), sort_keys=False, default_flow_style=False, width=120).rstrip()


def remediation(verdict: Verdict, value: Any, tag: str) -> str:
    """What to do about ``verdict``, as text with a ready task where a task is the fix."""
    key = verdict.key
    if verdict.reason == KUBELET_UNSAFE:
        return (f"Allow it on the nodes that run this pod (kubelet flag --allowed-unsafe-sysctls={key}, "
                f"or in the KubeletConfiguration):\n"
                + yaml.safe_dump({"allowedUnsafeSysctls": [key]}, sort_keys=False).rstrip())
    if verdict.reason == REJECTED and verdict.namespace == "uts":
        return f"Remove {key} from the spec and use the runtime's hostname/domainname option instead."
    where = "Remove it from the container spec and run this on the host"
    if verdict.reason == KERNEL_GATED:
        where = f"On hosts older than {verdict.since}, run this on the host (the container cannot own it there)"
    elif verdict.reason == HOST_NAMESPACE:
        where = "The container uses the host's namespace, so set it on the host"
    if value is None or value == "" or isinstance(value, (Mapping, list)):
        value = "{{ " + re.sub(r"[^A-Za-z0-9_]", "_", key) + " }}"  # a variable the user fills in
    elif isinstance(value, bool):
        value = int(value)
    return f"{where}:\n{render_tasks([host_sysctl_task(tag, key, value)])}"
