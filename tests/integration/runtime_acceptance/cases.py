"""What the acceptance harness asks every runtime for: one key per class, per namespace mode.

A case is (key, mode). ``mode`` is ``private`` (new net/ipc/uts namespaces: how a container runs
by default) or ``host-net`` / ``host-ipc`` / ``host-uts`` (that one namespace is the host's: the
spec has no entry for it). ``host-net-path`` is the host's network namespace *joined by path*
(an OCI ``network`` entry whose ``path`` is the host's ``/proc/PID/ns/net``: what ``podman
--network ns:PATH`` and a CRI runtime joining a pod's netns write), asked only of the paths that
can express it (:data:`PATH_MODES`). Host modes only ask for the keys of the namespace they
share: the other keys behave as in ``private``.

Safety: a runtime that does not validate (LXC), or a check that turns out weaker than expected,
writes the requested value. Every key that is not the container's own in the case's namespaces
is therefore requested with the host's *current* value, read just before the case runs: a write
that reaches the host changes nothing, and the harness checks afterwards that the host still
has that value. Only keys a fresh private namespace owns get a distinct value, so that
"accepted" can be told from "applied".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

HOST = None  # "use the host's current value"


@dataclass(frozen=True)
class Key:
    key: str
    klass: str           # what the case represents (not the knowledge base's class)
    namespace: str       # the namespace that would own it: net, ipc, uts, user, pid, none
    value: Optional[str]  # the value in private mode; HOST = the host's current value
    read_path: Optional[str] = None  # /proc/sys path to read back inside, when not the plain swap


KEYS: Tuple[Key, ...] = (
    Key("net.core.somaxconn", "per-namespace net", "net", "1234"),
    Key("net.ipv4.conf.lo.rp_filter", "per-interface net", "net", "2"),
    Key("kernel.shmmax", "per-namespace ipc", "ipc", "1073741824"),
    Key("fs.mqueue.msg_max", "per-namespace ipc (mqueue)", "ipc", "20"),
    Key("kernel.shm_next_id", "per-namespace ipc (*_next_id)", "ipc", "4242"),
    Key("kernel.domainname", "per-namespace uts", "uts", "nsg.example"),
    Key("kernel.hostname", "per-namespace uts (OCI hostname field)", "uts", "nsg-accept"),
    Key("net.core.netdev_max_backlog", "host-only net (absent in a child netns)", "net", HOST),
    Key("net.core.rmem_max", "read-only mirror (net)", "net", HOST),
    Key("net.netfilter.nf_hooks_lwtunnel", "leaking (global static key behind a per-netns file)", "net", HOST),
    Key("vm.max_map_count", "global vm", "none", HOST),
    Key("fs.file-max", "global fs", "none", HOST),
    Key("kernel.panic", "global kernel", "none", HOST),
    Key("kernel.pid_max", "per pid namespace since 6.14", "pid", HOST),
    Key("user.max_user_namespaces", "per user namespace", "user", HOST),
    Key("net.ipv4.foo_bar", "unknown (in no kernel)", "net", "1"),
    Key("net/ipv4/ip_forward", "'/'-separated spelling", "net", "1", read_path="net/ipv4/ip_forward"),
    Key("net.ipv4.conf.eth0.100.rp_filter", "VLAN-dotted interface name (eth0.100)", "net", "2"),
)
BY_NAME = {k.key: k for k in KEYS}

MODES = ("private", "host-net", "host-ipc", "host-uts")
MODE_NAMESPACE = {"host-net": "net", "host-ipc": "ipc", "host-uts": "uts", "host-net-path": "net"}
# Modes only some paths can express: asked of a driver that lists them in its ``extra_modes``.
PATH_MODES = ("host-net-path",)


def cases(extra_modes: Tuple[str, ...] = ()) -> Tuple[Tuple[Key, str], ...]:
    """Every (key, mode): each key privately; each namespaced key also with that namespace shared
    (and, for ``extra_modes``, shared the way that mode shares it)."""
    out = [(k, "private") for k in KEYS]
    for mode, ns in MODE_NAMESPACE.items():
        if mode in PATH_MODES and mode not in extra_modes:
            continue
        out += [(k, mode) for k in KEYS if k.namespace == ns]
    return tuple(out)


def proc_path(key: str) -> str:
    """The file a runtime writes for ``key``: runc, crun, CRI-O's pinns and LXC replace every
    '.' with '/' (a '/'-spelled key is used as it is)."""
    return key if "/" in key else key.replace(".", "/")


def case_value(key: Key, mode: str, host_value: Optional[str]) -> Optional[str]:
    """The value to request: distinct only where the case's namespaces own the key."""
    own = mode == "private" and key.value is not HOST
    if own and key.namespace in ("net", "ipc", "uts"):
        return key.value
    return host_value if host_value is not None else (key.value or "1")
