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
from . import acceptance, consequence, key_inventory
from .classify import scope as knowledge_scope
from .remediation import host_sysctl_task
from .versions import KernelVersionError, format_kernel, parse_kernel
from .vocabulary import PER_NAMESPACE_CLASSES, is_path_spelling, key_to_path, path_to_key

DEFAULT_FLOOR = "4.18"
# Environment variables, because ansible-lint's config schema refuses per-rule options.
FLOOR_ENV = "NSGUARD_SYSCTL_KERNEL_FLOOR"
# The oldest Kubernetes (kubelet) the user runs; unset = the newest safe set the knowledge has.
K8S_ENV = "NSGUARD_SYSCTL_K8S_VERSION"
SAFE_SYSCTLS_SOURCE = "kubernetes/kubernetes pkg/kubelet/sysctl/safe_sysctls.go"
# moby's Engine API: from 1.48 (Engine 28) per-interface keys go in the endpoint's driver option.
MOBY_SYSCTL_BC = ("moby/moby daemon/server/router/container/container_routes.go handleSysctlBC "
                  "(6d26a27c8393)")
# The acceptance cases whose measured rows speak for a kind of key (tests/integration/runtime_acceptance/cases.py).
CASE_SLASH = "net/ipv4/ip_forward"
CASE_VLAN = "net.ipv4.conf.eth0.100.rp_filter"
CASE_UNKNOWN = "net.ipv4.foo_bar"


# Reasons a verdict can carry; each ansible-lint rule reports a subset.
GLOBAL = "global"                  # global / mirror / leaking on every kernel since the floor
ABSENT = "host-only"               # absent from a container's namespace on every kernel since the floor
REJECTED = "runtime-rejected"      # every runtime that could run the spec refuses the key
HOST_NAMESPACE = "host-namespace"  # namespaced, but the spec shares that namespace with the host
KERNEL_GATED = "kernel-gated"      # namespaced on one side of a kernel gate only
KUBELET_UNSAFE = "kubelet-unsafe"  # outside the kubelet's safe set
UNKNOWN = "unknown"                # a name no kernel the knowledge covers has (a typo)
UNSETTABLE = "unsettable"          # no runtime can write it (an interface name with a dot)
VERSION_GATED = "runtime-version-gated"  # refused by newer releases of the spec's runtime path

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


class K8sVersionError(ValueError):
    """The Kubernetes version option is not a version such as 1.29."""


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
    # The OCI runtimes under a kubelet: a key the kubelet lets through can still be refused there.
    oci: Tuple[str, ...] = ()
    # A Docker API container on a bridge or user-defined network (moby's handleSysctlBC applies).
    docker_bridge: bool = False
    # Host namespaces joined by path (podman --network ns:/proc/1/ns/net), not left out of the spec.
    joined_by_path: frozenset = frozenset()


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
    if is_path_spelling(text):
        text = path_to_key(text)
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


def parse_k8s(text: Optional[str] = None) -> Optional[Tuple[int, int]]:
    """The Kubernetes version as (major, minor): ``text``, else ``$NSGUARD_SYSCTL_K8S_VERSION``,
    else None (judge against the newest safe set)."""
    origin = "Kubernetes version"
    if text is None:
        text = os.environ.get(K8S_ENV) or None
        origin = K8S_ENV
    if text is None or str(text).strip() == "":
        return None
    match = re.fullmatch(r"\s*v?(\d+)\.(\d+)(\.\d+)?\s*", str(text))
    if not match:
        raise K8sVersionError(f"{origin}={text!r} is not a Kubernetes version such as 1.29")
    return int(match.group(1)), int(match.group(2))


def _k8s_text(version: Tuple[int, int]) -> str:
    return "%d.%d" % version


def _measured_quote(kb: Any, runtime: str, case: str, key: str, value: Optional[str], mode: str = "private",
                    refused_only: bool = True) -> Optional[str]:
    """What ``runtime`` printed for the acceptance case ``case``, as it reads for ``key``."""
    spec = (getattr(kb, "runtimes", None) or {}).get(runtime)
    tables = getattr(kb, "tables", None)
    if spec is None or tables is None or not spec.measured_tables:
        return None
    rows = [r for name in spec.measured_tables for r in tables.rows(name, case, mode)
            if not (refused_only and r.accepted)]
    return acceptance.quote(rows, key, value) if rows else None


_VLAN = re.compile(r"^net\.(ipv4|ipv6|mpls)\.(conf|neigh)\.(?P<dev>[^.]+(\.[^.]+)+)\.(?P<leaf>[^.]+)$")


def vlan_dotted(name: str) -> Optional[Tuple[str, str]]:
    """``(device, slash spelling)`` for a dotted key whose interface name has a dot
    (``net.ipv4.conf.eth0.100.rp_filter``), else None."""
    match = _VLAN.match(name)
    if not match or len(name.split(".")) <= 5:
        return None
    dev = match.group("dev")
    head = name[:match.start("dev")].rstrip(".")
    return dev, "/".join(head.split(".") + [dev, match.group("leaf")])


def docker_interface_key(name: str) -> bool:
    """moby's test in handleSysctlBC: ``net.*.*.eth*.*`` (split in at most five parts)."""
    parts = name.split(".", 4)
    return len(parts) == 5 and parts[0] == "net" and parts[3].startswith("eth")


def is_unknown(kb: Any, name: str) -> bool:
    """No knowledge entry names ``name`` and no listed kernel has it, though they have its directory."""
    found = kb.lookup(name) if hasattr(kb, "lookup") else None
    if found and found[1] == name:
        return False
    return key_inventory.load().unknown(name)


def _is_ns(klass: Optional[str]) -> bool:
    return klass in PER_NAMESPACE_CLASSES


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


def _verdicts(sc: Mapping[str, Any], runtimes: Sequence[str]) -> List[Tuple[str, Mapping[str, Any]]]:
    """``[(runtime, verdict)]`` of the scope ``sc`` for ``runtimes`` (``{}`` where it has none)."""
    known = sc.get("runtimes") or {}
    return [(rt, known.get(rt) or {}) for rt in runtimes]


def _runtime_refusals(sc: Mapping[str, Any], runtimes: Sequence[str]) -> List[Tuple[str, Optional[str]]]:
    """``[(runtime, error)]`` when *every* listed runtime refuses the key, else ``[]``."""
    return consequence.refusals(_verdicts(sc, runtimes))


def _effect(ctx: SpecContext, sc: Mapping[str, Any], klass: Optional[str]) -> str:
    """What happens when a spec like ``ctx`` asks for a key the container cannot own."""
    return consequence.requested_effect(klass, _verdicts(sc, ctx.runtimes), direct_write=ctx.direct_write)


def _joined_by_path(kb: Any, runtimes: Sequence[str], name: str, value: Optional[str]) -> Optional[str]:
    """What each runtime did, measured, with the host's network namespace joined by path (the
    acceptance tables' ``host-net-path`` rows of the case that speaks for ``name``)."""
    parts = []
    for rt in runtimes:
        spec = (getattr(kb, "runtimes", None) or {}).get(rt)
        rule = spec.rule_for(name) if spec is not None else None
        case = rule.rows_host[0].key if rule is not None and rule.rows_host else None
        rows = [r for t in (spec.measured_tables if spec else ()) for r in kb.tables.rows(t, case, "host-net-path")] if case else []
        refused = [r for r in rows if not r.accepted]
        if refused:
            parts.append(acceptance.quote(refused, name, value))
        parts += [f"{acceptance.LABELS.get(r.runtime, r.runtime)} {r.version} accepts it and writes the host's own "
                  f"value (measured {r.measured})" for r in rows if r.accepted]
    return "; ".join(parts) if parts else None


def _label(runtime: str, kb: Any) -> str:
    spec = (getattr(kb, "runtimes", None) or {}).get(runtime)
    return acceptance.LABELS.get(getattr(spec, "measured_as", None) or "", runtime)


class _Unjudgeable(Exception):
    """The knowledge cannot scope a key (:func:`name_verdicts` then has no verdict for it)."""


def _spelling_verdicts(kb: Any, raw: str, name: str, ctx: SpecContext, value: Optional[str],
                       base: Callable[[], Mapping[str, Any]]) -> List[Verdict]:
    """Problems of how the key is *written*, whatever its class: a dotted interface name no
    runtime can write, and a '/'-separated name that the CLIs refuse. ``base()`` gives the
    verdict's class fields, asked only for a verdict (most names have none)."""
    vlan = vlan_dotted(name)
    if vlan is not None and not ctx.direct_write:
        dev, slash = vlan
        runtimes = ctx.oci or ctx.runtimes or ("runc",)
        quotes = [q for q in (_measured_quote(kb, rt, CASE_VLAN, name, value) for rt in runtimes) if q]
        said = f" ({'; '.join(quotes)})" if quotes else ""
        msg = (f"{name} names interface '{dev}', whose name has a dot: runc, crun, CRI-O's pinns and LXC turn "
               f"every '.' into '/', so they open /proc/sys/{key_to_path(name.replace('/', '.'))}, which does not "
               f"exist{said}; no runtime can set this key. Set it on the host or where the interface is made "
               f"(the sysctl spelling is {slash}).")
        return [Verdict(name, UNSETTABLE, "error", msg, **base())]
    slashed = isinstance(raw, str) and "/" in raw.strip().split(".", 1)[0]
    if slashed and ctx.runtimes and not ctx.direct_write:
        refused = [(rt, q) for rt in ctx.runtimes
                   for q in [_measured_quote(kb, rt, CASE_SLASH, raw.strip(), value)] if q]
        if refused and len(refused) == len(ctx.runtimes):
            rt, dummy = refused[0]
            msg = (f"{raw.strip()} is spelled with '/': {'; '.join(q for dummy2, q in refused)}. "
                   f"Write it as {name} in {ctx.where}.")
            return [Verdict(name, REJECTED, "error", msg, runtime=rt, runtime_error=refused[0][1], **base())]
        if refused:
            rt, quoted = refused[0]
            msg = (f"{raw.strip()} is spelled with '/', which {_label(rt, kb)} refuses ({quoted}) while other "
                   f"runtimes of {ctx.where} accept it. Write it as {name}.")
            return [Verdict(name, REJECTED, "warning", msg, runtime=rt, runtime_error=quoted, **base())]
    return []


def _name_verdicts(kb: Any, raw: Any, name: str, ctx: SpecContext, value: Optional[str],
                   base: Callable[[], Mapping[str, Any]]) -> List[Verdict]:
    """Problems of the key's *name*, whatever its class: the spelling (:func:`_spelling_verdicts`),
    then a name no kernel has (never "allow it": the container fails at start)."""
    spelled = _spelling_verdicts(kb, raw, name, ctx, value, base)
    if spelled or not is_unknown(kb, name):
        return spelled
    runtimes = ctx.oci or ctx.runtimes or ("runc",)
    quotes = [q for q in (_measured_quote(kb, rt, CASE_UNKNOWN, name, value) for rt in runtimes) if q]
    kernels = ", ".join(key_inventory.load().kernels)
    msg = (f"{name} is not a sysctl of any kernel the knowledge covers (no knowledge entry names it and "
           f"Linux {kernels} has no such key): check the spelling."
           + (f" Runtimes accept the name and the container fails to start: {'; '.join(quotes)}." if quotes
              and not ctx.direct_write else ""))
    return [Verdict(name, UNKNOWN, "warning", msg, **base())]


def name_verdicts(kb: Any, key: Any, ctx: SpecContext = SpecContext(), value: Any = None,
                  scope: Optional[Callable[..., Mapping[str, Any]]] = None) -> List[Verdict]:
    """The problems of how ``key`` is named for a spec like ``ctx`` (no kernel floor involved):
    a dotted interface name no runtime can write, a '/' spelling the spec's runtimes refuse, a
    name in no kernel. The facts rules (rules_builtin, a running container's requests) and
    :func:`assess` decide these alike through it. ``[]`` for a well-named or unjudgeable key."""
    name = normalize_key(key)
    if name is None:
        return []
    text = None if value is None or isinstance(value, (Mapping, list)) else str(value)

    # The key's scope on the latest kernel (every runtime's verdict: most of this function's
    # cost) is only needed for a verdict; a well-named key, nearly every one, has none.
    def base() -> Mapping[str, Any]:
        try:
            latest = (scope or knowledge_scope)(kb, name, kernel=None, value=text)
        except (KeyError, ValueError, TypeError) as exc:
            raise _Unjudgeable() from exc
        return dict(klass=latest.get("class"), namespace=latest.get("namespace"), evidence=latest.get("evidence"),
                    scope=latest)

    try:
        return _name_verdicts(kb, key, name, ctx, text, base)
    except _Unjudgeable:
        return []


def _kubelet_safe_since(kb: Any, name: str) -> Tuple[Optional[str], str, bool]:
    """``(since_k8s, citation, unverified)`` of the key's kubelet safe-set entry, if any: the
    pull request that added it and a commit at which the file lists it."""
    found = kb.lookup(name) if hasattr(kb, "lookup") else None
    entry = found[0] if found else None
    safe = getattr(entry, "kubelet_safe", None) or {}
    if not safe:
        return None, "", False
    cite = ", ".join(part for part in (
        f"listed there at {safe['commit']}" if safe.get("commit") else "",
        f"added by kubernetes/kubernetes#{safe['pr']}" if safe.get("pr") else "") if part)
    return str(safe.get("since_k8s")), cite, bool(safe.get("unverified"))


def _version_of(text: Optional[str]) -> Optional[Tuple[int, int]]:
    try:
        return parse_k8s(text) if text else None
    except K8sVersionError:
        return None


@dataclass(frozen=True)
class _Scoped:
    """One key as :func:`assess`'s phases read it: its class at the floor and on the latest kernel."""

    name: str
    text: Optional[str]  # the requested value as text, None when there is none
    floor: str
    at_floor: Mapping[str, Any]
    latest: Mapping[str, Any]
    k_floor: str
    k_latest: str
    namespace: Optional[str]
    since: Optional[str]  # the kernel where the class changes, between the floor and the latest
    also: str  # " (stable backports: ...)" or ""
    base: Mapping[str, Any]  # the fields every verdict of this key carries


def assess(
    kb: Any,
    key: Any,
    ctx: SpecContext = SpecContext(),
    floor: Optional[str] = None,
    scope: Optional[Callable[..., Mapping[str, Any]]] = None,
    value: Any = None,
    k8s: Optional[str] = None,
) -> List[Verdict]:
    """Every problem with asking for ``key`` in a spec like ``ctx``, on kernels from ``floor`` on
    (and, for a Pod, on kubelets from ``k8s`` on: ``$NSGUARD_SYSCTL_K8S_VERSION``).

    Returns ``[]`` for a key that is fine, and for a key that cannot be judged (templated,
    not a string, unknown to the knowledge base's classifier). Never raises on odd input.
    ``value`` only makes the quoted runtime errors exact.

    The phases, in order: the key's name (0), a namespace shared with the host (1), a key
    namespaced nowhere (2), a runtime's refusal (3); the first that speaks is the only verdict.
    Then the warnings add up: Docker's per-interface keys (3b), a kernel gate (4), the kubelet's
    safe set (5).
    """
    name = normalize_key(key)
    if name is None:
        return []
    floor = parse_floor(floor) if floor is not None else parse_floor()
    k8s_version = parse_k8s(k8s) if k8s is not None else parse_k8s()
    sk = _scoped(kb, name, value, floor, scope or knowledge_scope)
    if sk is None:
        return []

    # 0. How the key is named: unsettable, refused as spelled, or in no kernel.
    named = _name_verdicts(kb, key, name, ctx, sk.text, lambda: dict(sk.base))
    if named:
        return named
    for phase in (_host_namespace_verdict, _global_verdict, _refused_verdict):
        verdict = phase(kb, sk, ctx)
        if verdict is not None:
            return [verdict]
    verdicts = [_docker_interface_verdict(sk, ctx), _kernel_gate_verdict(sk), _kubelet_verdict(kb, sk, ctx, k8s_version)]
    return [v for v in verdicts if v is not None]


def _scoped(kb: Any, name: str, value: Any, floor: str, scope: Callable[..., Mapping[str, Any]]) -> Optional[_Scoped]:
    """The key's class at the floor and on the latest kernel, or None when it cannot be judged."""
    try:
        text = None if value is None or isinstance(value, (Mapping, list)) else str(value)
        at_floor = scope(kb, name, kernel=floor, value=text)
        latest = scope(kb, name, kernel=None, value=text)
    except (KeyError, ValueError, TypeError):  # a classifier that cannot place the key: no verdict
        return None
    k_floor, k_latest = at_floor.get("class"), latest.get("class")
    if k_floor is None or k_latest is None:
        return None
    namespace = latest.get("namespace") if _is_ns(k_latest) else at_floor.get("namespace")
    base = dict(klass=k_floor, namespace=namespace, evidence=latest.get("evidence"), scope=latest)
    since, backports = _flip(kb, name, floor, at_floor, scope) if k_floor != k_latest else (None, ())
    also = f" (stable backports: {', '.join(backports)})" if backports else ""
    return _Scoped(name, text, floor, at_floor, latest, k_floor, k_latest, namespace, since, also, base)


def _host_namespace_verdict(kb: Any, sk: _Scoped, ctx: SpecContext) -> Optional[Verdict]:
    """1. A namespace the spec shares with the host: the key would be the host's own setting."""
    name, at_floor, latest = sk.name, sk.at_floor, sk.latest
    shared = ctx.host_namespaces & {at_floor.get("namespace"), latest.get("namespace")}
    if not (shared and (_is_ns(sk.k_floor) or _is_ns(sk.k_latest))):
        return None
    ns = sorted(shared)[0]
    verdicts = _verdicts(latest, ctx.runtimes)
    said = [q for q in (consequence.said(info, host=True, runtime=rt) for rt, info in verdicts) if q]
    rt_err = said[0] if said else None
    refused = consequence.host_namespace_effect(verdicts)
    if ns in ctx.joined_by_path:
        refused = _joined_by_path(kb, ctx.runtimes, name, sk.text) or refused
    how = "joins the host's %s namespace by path" % ns if ns in ctx.joined_by_path else "shares the host's %s namespace" % ns
    msg = (f"{name} is per {ns} namespace, but {ctx.where} {how}: "
           f"{refused}, and the setting would be the host's own. Set it on the host, "
           f"or give the container {_NAMESPACE_FIELD.get(ns, 'its own namespace')}.")
    return Verdict(name, HOST_NAMESPACE, "error", msg, runtime_error=rt_err, **sk.base)


def _global_verdict(kb: Any, sk: _Scoped, ctx: SpecContext) -> Optional[Verdict]:
    """2. Not namespaced anywhere from the floor on."""
    name, k_floor, k_latest = sk.name, sk.k_floor, sk.k_latest
    if _is_ns(k_floor) or _is_ns(k_latest):
        return None
    reason = ABSENT if k_floor == "host-only" and k_latest == "host-only" else GLOBAL
    if k_floor == k_latest:
        what = f"{name} is {_describe(k_floor)} on every kernel since {sk.floor}"
    else:
        what = (f"{name} is {_describe(k_floor)} on kernel {sk.floor} and "
                f"{_describe(k_latest)} from {sk.since or 'a later kernel'} on; it is never the container's own")
    effect = _effect(ctx, sk.latest, k_latest)
    msg = f"{what}: {effect}. Set it on the host and remove it from {ctx.where}."
    return Verdict(name, reason, "error", msg, since=sk.since, **sk.base)


def _refused_verdict(kb: Any, sk: _Scoped, ctx: SpecContext) -> Optional[Verdict]:
    """3. Refused by every runtime that could run the spec, namespaced or not; for a Pod, also
    by every OCI runtime under the kubelet (the kubelet may let it through first)."""
    name, namespace, latest = sk.name, sk.namespace, sk.latest
    for runtimes, after in ((ctx.runtimes, ""), (ctx.oci, "oci")):
        refusals = _runtime_refusals(sk.at_floor, runtimes) or _runtime_refusals(latest, runtimes)
        if not refusals:
            continue
        rt = refusals[0][0]
        quoted = "; ".join(q for q in (consequence.said((latest.get("runtimes") or {}).get(r) or {}, runtime=r)
                                       for r, dummy in refusals) if q)
        err = refusals[0][1]
        fix = ("set it through the runtime's own option (hostname, domainname)" if namespace == "uts"
               else "set it on the host")
        if after:
            msg = (f"{name} passes the kubelet's checks (with --allowed-unsafe-sysctls), but the OCI runtime "
                   f"under it refuses it: {quoted}. The pod will not start, and allowing it on the kubelet "
                   f"cannot help. Remove it from {ctx.where} and {fix}.")
        else:
            why = (f"{name} is per user namespace and the container has none of its own (it runs in the host's), "
                   "so it is refused" if namespace == "user" else
                   f"{name} is refused although the kernel keeps it {_describe(sk.k_latest)}")
            msg = (f"{why}: {quoted or rt + ' refuses it'}. "
                   f"The container will not start. Remove it from {ctx.where} and {fix}.")
        return Verdict(name, REJECTED, "error", msg, runtime=rt, runtime_error=err, **sk.base)
    return None


def _docker_interface_verdict(sk: _Scoped, ctx: SpecContext) -> Optional[Verdict]:
    """3b. Docker Engine API >= 1.48 refuses per-interface keys as container sysctls."""
    name = sk.name
    if not ("docker-api" in ctx.runtimes and ctx.docker_bridge and docker_interface_key(name)):
        return None
    parts = name.split(".", 4)
    ifname = f"net.{parts[1]}.{parts[2]}.IFNAME.{parts[4]}"
    msg = (f"{name} names an interface: Docker Engine 28 and later (API >= 1.48) refuse it "
           f"(\"interface specific sysctl setting \"{name}\" must be supplied using driver option "
           f"'com.docker.network.endpoint.sysctls'\"); API 1.46-1.47 move an eth0 key to the endpoint and "
           f"refuse other interfaces (\"unable to determine network endpoint for sysctl {name}\"), from "
           f"{MOBY_SYSCTL_BC}. Set {ifname} in the network's driver_opts "
           f"(com.docker.network.endpoint.sysctls) instead of {ctx.where}'s sysctls.")
    return Verdict(name, VERSION_GATED, "warning", msg, runtime="docker-api", **sk.base)


def _kernel_gate_verdict(sk: _Scoped) -> Optional[Verdict]:
    """4. A kernel gate between the floor and the latest kernel."""
    name, floor, k_floor, k_latest, also = sk.name, sk.floor, sk.k_floor, sk.k_latest, sk.also
    if _is_ns(k_floor) == _is_ns(k_latest):
        return None
    gate = sk.since or "a later kernel"
    if _is_ns(k_latest):
        msg = (f"{name} is namespaced only since kernel {gate}{also}; from {floor} up to {gate} it is "
               f"{_describe(k_floor)}, so a container cannot own it there. Set it on the host, or "
               f"raise the kernel floor ({FLOOR_ENV}={gate}) if every host runs {gate} or later.")
    else:
        msg = (f"{name} is {_describe(k_latest)} from kernel {gate}{also} on (per namespace before): "
               f"on hosts with {gate} or later the container cannot own it. Set it on the host.")
    return Verdict(name, KERNEL_GATED, "warning", msg, since=gate, **sk.base)


def _kubelet_verdict(kb: Any, sk: _Scoped, ctx: SpecContext, k8s_version: Any) -> Optional[Verdict]:
    """5. The kubelet's safe set (of the kernel floor, and of the Kubernetes version given)."""
    name = sk.name
    if not ctx.kubelet:
        return None
    kubelet = (sk.at_floor.get("runtimes") or {}).get("kubelet") or {}
    since_k8s, safe_cite, unverified = _kubelet_safe_since(kb, name)
    too_old = (k8s_version is not None and kubelet.get("safe", False) and since_k8s is not None
               and _version_of(since_k8s) is not None and k8s_version < _version_of(since_k8s))
    if not (kubelet and kubelet.get("accepts", True) and (not kubelet.get("safe", False) or too_old)):
        return None
    err = kubelet.get("error") or f'forbidden sysctl: "{name}" not allowlisted'
    if too_old:
        cite = (f"{SAFE_SYSCTLS_SOURCE}" + (f", {safe_cite}" if safe_cite else "")
                + (" (unverified: the knowledge's since_k8s is not backed by a source commit)" if unverified else ""))
        msg = (f"{name} is in the kubelet's safe set only since Kubernetes {since_k8s} ({cite}): a kubelet "
               f"{_k8s_text(k8s_version)} ({K8S_ENV}) rejects the pod (SysctlForbidden: {err}) unless it "
               f"runs with --allowed-unsafe-sysctls={name}.")
    else:
        msg = (f"{name} is not in the Kubernetes safe set: the kubelet rejects the pod (SysctlForbidden: {err}) "
               f"unless it runs with --allowed-unsafe-sysctls={name}; the Pod Security baseline level "
               "also forbids it.")
    return Verdict(name, KUBELET_UNSAFE, "warning", msg, **sk.base)


def render_tasks(tasks: Iterable[Mapping[str, Any]]) -> str:
    """YAML text of a task list, ready to paste into a play."""
    return yaml.safe_dump(list(tasks), sort_keys=False, default_flow_style=False, width=120).rstrip()


def remediation(verdict: Verdict, value: Any, tag: str) -> str:
    """What to do about ``verdict``, as text with a ready task where a task is the fix."""
    key = verdict.key
    if verdict.reason == UNKNOWN:
        return f"Check the name: no kernel has {key}. Remove it from the spec, or correct the spelling."
    if verdict.reason == VERSION_GATED:
        return ("Move it to the network endpoint: driver_opts: {com.docker.network.endpoint.sysctls: "
                f"\"{re.sub(r'^(net[.][^.]+[.][^.]+)[.]eth[^.]*[.]', lambda m: m.group(1) + '.IFNAME.', key)}={value}\"}}")
    if verdict.reason == UNSETTABLE:
        vlan = vlan_dotted(key)
        slash = vlan[1] if vlan else key
        return (f"Remove {key} from the spec; no runtime can write it. On the host:\n"
                + render_tasks([host_sysctl_task(tag, slash, value if value not in (None, "") else "{{ value }}")]))
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
