# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What several checks share: a set's requests by dotted name, the spec and host tasks that
remediate them, where the remediation goes, and the finding of a refused request (NSG001/NSG002)."""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from .. import consequence
from .. import remediation as rem
from .. import static_judge
from ..rule_context import Context, RuleLike, make_finding
from ..vocabulary import GLOBAL_CLASSES, as_number, set_label, squash


def host_task_unless_lower(ctx: Context, rule: RuleLike, key: str, wanted: Any, why: str) -> Tuple[List[Dict[str, Any]], str]:
    """The host task setting ``key`` to ``wanted``, unless the host already has it or a higher
    number (a request for less than the host has must not lower it for everybody)."""
    host_value = ctx.host_value(key)
    if squash(host_value) == squash(wanted):
        return [], "the host already has %s=%s: only the container's spec needs the change" % (key, squash(wanted))
    got, want = as_number(host_value), as_number(wanted)
    if got is not None and want is not None and got > want:
        return [], ("the host already has a higher value (%s): lowering a global key changes it for every "
                    "container, so no host task is proposed" % host_value)
    return [rem.host_sysctl_task(rule.id, key, wanted, persisted=ctx.persisted, options=ctx.options, why=why)], ""


def host_owned_reason(ctx: Context, nset: Mapping[str, Any], key: str) -> str:
    """Why ``key`` is the host's and no container spec may set it, or '' when it is the set's own:
    global on this host, or of a namespace the set shares with the host."""
    info = ctx.klass(key)
    if info["class"] in GLOBAL_CLASSES:
        return "%s is %s on this host: a container's spec must not set it; set it on the host" % (key, info["class"])
    if info["namespace"] in ctx.shared_namespaces(nset):
        return ("%s belongs to the %s namespace this container shares with the host: its value is the host's; "
                "set it on the host" % (key, info["namespace"]))
    return ""


def requested_keys(nset: Mapping[str, Any]) -> List[Tuple[str, Any]]:
    """The set's requested sysctls by their dotted names: a '/'-spelled request
    (``net/ipv4/ip_forward``) is the key sysctl(8), runc and the kubelet read it as
    (NSG010 judges the spelling itself)."""
    named = {static_judge.normalize_key(raw) or raw: value for raw, value in (nset.get("requested") or {}).items()}
    return sorted(named.items())


def spec_tasks(ctx: Context, rule: RuleLike, nset: Mapping[str, Any], set_to: Mapping[str, Any]) -> List[Dict[str, Any]]:
    """Container-spec tasks for ``nset``, keeping its own requests (not its engine's defaults)
    except keys that are the host's (:func:`host_owned_reason`)."""
    requested = dict(requested_keys(nset))
    never = [k for k in set(requested) | set(set_to) if host_owned_reason(ctx, nset, k)]
    return rem.container_sysctl_tasks(rule.id, nset.get("identity") or {}, set_to, requested=requested,
                                      options=ctx.options, engine_defaults=nset.get("requested_defaults") or (),
                                      never=never)


def spec_removal(ctx: Context, rule: RuleLike, nset: Mapping[str, Any], key: str) -> List[Dict[str, Any]]:
    return spec_tasks(ctx, rule, nset, {key: None})


def _no_spec_note(nset: Mapping[str, Any]) -> str:
    identity = nset.get("identity") or {}
    runtime = identity.get("runtime") or "unknown"
    if runtime in ("unknown", None):
        init = nset.get("init") or {}
        return ("the namespace set is not identified as a container (init %s, pid %s): change whatever "
                "starts it" % (init.get("comm") or "?", init.get("pid") or "?"))
    if runtime == "runc":
        return "edit linux.sysctl in the bundle's config.json (%s)" % (nset.get("requested_source") or "config.json")
    if runtime == "systemd-nspawn":
        return "systemd-nspawn has no sysctl option: set it from the container's own init (its network namespace is its own)"
    return "no Ansible module edits %s containers' specs: change it where the container is defined" % runtime


def container_where(tasks: List[Dict[str, Any]], nset: Mapping[str, Any], note: str = "",
                     ctx: Optional[Context] = None, keys: Iterable[str] = ()) -> Dict[str, Any]:
    if not tasks:
        why = next(filter(None, (host_owned_reason(ctx, nset, k) for k in keys)), "") if ctx is not None else ""
        note = "; ".join(n for n in (note, why or _no_spec_note(nset)) if n)
    return rem.remediation("container-spec", tasks, note)


def requested_consequence(ctx: Context, nset: Mapping[str, Any], key: str, requested: str,
                           klass: str) -> Tuple[str, Optional[str]]:
    """What happens when this set's runtime is asked for ``key``: (sentence, quoted error), in
    the words both judges use (:func:`consequence.requested_effect`)."""
    verdict = ctx.runtime_verdict(key, nset, requested)
    signals = ctx.write_signals(nset)
    runtime = ((nset.get("identity") or {}).get("runtime") or "unknown").lower()
    writes = signals["signals"] if signals["privileged"] or signals["proc_sys_rw"] else ()
    text = consequence.requested_effect(klass, [(verdict["runtime"], verdict)] if verdict else [],
                                        can_write=writes, lxc=runtime == "lxc")
    return text + ".", verdict.get("error")


def request_finding(ctx: Context, rule: RuleLike, nset: Mapping[str, Any], key: str, requested: str,
                     info: Mapping[str, Any], container_value: Optional[str], error: Optional[str],
                     message_vars: Mapping[str, Any]) -> Dict[str, Any]:
    """A finding about a requested global key: fix it on the host, drop it from the spec."""
    tasks, note = host_task_unless_lower(ctx, rule, key, requested, "%s asks for it" % set_label(nset))
    tasks += spec_removal(ctx, rule, nset, key)
    variables = {"requested": squash(requested), "host_value": ctx.host_value(key)}
    variables.update(message_vars)
    return make_finding(
        ctx, rule, nset=nset, key=key, klass=info,
        values={"host": ctx.host_value(key), "container": container_value, "requested": requested,
                "persisted": (ctx.persisted_entry(key) or {}).get("value")},
        message_vars=variables,
        remediation=rem.remediation("host", tasks, note),
        details={"runtime_error": error, "runtime": (nset.get("identity") or {}).get("runtime")},
    )
