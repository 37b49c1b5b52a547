# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What happens when a container asks for a sysctl it cannot own: the runtime-consequence prose
of both judges, in one place.

The facts rules (rules_builtin: a running container, its runtime and privileges known) and the
static judge (static_judge: a spec, the runtimes that could run it) describe the same events:
the runtime refuses the key, accepts the name and the container fails to start, accepts it and
the write lands on the host, or a privileged write changes it for everybody. Both give
:func:`requested_effect` the runtime verdicts they have (``classify.runtimes`` entries, by
runtime name) and quote the runtime's words with :func:`said`.

Plain Python over verdict dicts: no knowledge loading, no ansible.
"""
from __future__ import annotations

from typing import Any, List, Mapping, Optional, Sequence, Tuple

Verdicts = Sequence[Tuple[str, Mapping[str, Any]]]

LEAKS = "a write from the container's own namespace changes the host's value (the key leaks on this kernel)"
PRIVILEGED_WRITE = "a privileged container that writes it changes it for every container on the host"
DIRECT_WRITE = "writing it from inside the container fails (read-only /proc/sys)"
DIRECT_WRITE_PRIVILEGED = ", or, in a privileged container, changes it for the whole host"
LXC = ("LXC does not validate sysctls: with /proc/sys writable (proc:rw) it sets the host's value for every "
       "container; with the default proc:mixed the start fails (Read-only file system)")
UNVALIDATED = ("a runtime that validates sysctls (runc, crun, Docker, Podman, the kubelet) rejects it; one that "
               "does not (LXC), or a privileged write, changes it for the whole host")
UNVALIDATED_HOST_NAMESPACE = ("a runtime that checks (runc, crun, Docker, Podman, the kubelet) refuses to start it; "
                              "one that does not (LXC) writes the host's own value")


def said(info: Mapping[str, Any], host: bool = False, runtime: str = "") -> Optional[str]:
    """A runtime verdict's words: measured (every version, with the date), else the knowledge
    base's text with the source it was read from, marked unverified when neither backs it."""
    measured = info.get("quote_host" if host else "quote")
    if measured:
        return measured
    error = info.get("error_host_namespace" if host else "error")
    if not error:
        return None
    who = f"{runtime} says " if runtime else ""
    verified = info.get("verified") or "unverified"
    if verified == "unverified":
        return f'{who}"{error}" (unverified: neither measured nor read from the runtime\'s source)'
    if verified.startswith("source: "):
        return f'{who}"{error}" (from {verified[len("source: "):]})'
    return f'{who}"{error}"'


def refusals(verdicts: Verdicts) -> List[Tuple[str, Optional[str]]]:
    """``[(runtime, error)]`` when *every* runtime of ``verdicts`` refuses the key, else ``[]``."""
    out = []
    for runtime, info in verdicts:
        if not isinstance(info, Mapping) or info.get("accepts", True):
            return []
        out.append((runtime, info.get("error")))
    return out


def requested_effect(klass: Optional[str], verdicts: Verdicts, *, direct_write: bool = False,
                     can_write: Sequence[str] = (), lxc: bool = False) -> str:
    """What happens to a request for a key of ``klass`` that the container cannot own.

    ``verdicts``: the verdict of each runtime that could run the container (``[]``: unknown).
    ``direct_write``: the key is written from inside the container (a sysctl task over a
    container connection). ``can_write``: the privileges that let this container write
    /proc/sys (privileged, /proc/sys rw). ``lxc``: the runtime does not validate.
    """
    writable = klass in ("global", "leaking")
    if direct_write:
        return DIRECT_WRITE + (DIRECT_WRITE_PRIVILEGED if writable else "")
    known = [(rt, info) for rt, info in verdicts if isinstance(info, Mapping) and info]
    failing = [(rt, said(info, runtime=rt)) for rt, info in known
               if info.get("accepts", True) and info.get("applies") is False]
    writing = [rt for rt, info in known if info.get("accepts", True) and info.get("applies") is not False]
    suffix = writable
    if lxc:
        text, suffix = LXC, False
    elif can_write:
        text, suffix = ("this container can write it (%s): a write changes the host for every container"
                        % ", ".join(can_write)), False
    elif known and refusals(known):
        text = "the runtime rejects it at deploy time: " + "; ".join(
            said(info, runtime=rt) or f"{rt} refuses it" for rt, info in known)
    elif klass == "mirror":
        quoted = "; ".join(q for dummy, q in failing if q)
        text = ("the container's namespace shows the host's live value read-only, so the write fails"
                + (": " + quoted if quoted else " (EACCES, permission denied)"))
    elif failing:
        text = "the runtime accepts the name, but the container fails to start: " + "; ".join(
            q or f"{rt} cannot write it" for rt, q in failing)
    elif writing and writable:
        text, suffix = "%s accepts it and the write changes the host for every container" % ", ".join(writing), False
    elif not known:
        text, suffix = UNVALIDATED, False  # it names the privileged write itself
    else:
        text = "the container cannot own it"
    if klass == "leaking":
        text = f"{LEAKS}; {text}"
    return text + (f"; {PRIVILEGED_WRITE}" if suffix else "")


def host_namespace_effect(verdicts: Verdicts) -> str:
    """What a runtime does with a per-namespace key when the container shares that namespace
    with the host: its refusal, quoted, else what validating and non-validating runtimes do."""
    quoted = [q for q in (said(info, host=True, runtime=rt) for rt, info in verdicts if isinstance(info, Mapping)) if q]
    return "the runtime refuses it: " + "; ".join(quoted) if quoted else UNVALIDATED_HOST_NAMESPACE
