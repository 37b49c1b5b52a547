# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""NSG006 container-can-change-global (rules/catalog/NSG006-container-can-change-global.yml): a
container can change global kernel settings for the whole host.

The check behind the rule file; its words (message, rationale) are the file's."""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Tuple

from .. import remediation as rem
from ..rule_context import Context, RuleLike, glob_any, make_finding
from ..vocabulary import set_label, writable
from .common import container_where


def _exposed_keys(ctx: Context) -> Tuple[List[str], List[str]]:
    """(writable global keys, leaking keys) on this host, by the classifier."""
    exposed, leaking = [], []
    for key, info in sorted(ctx.classification.items()):
        klass = (info or {}).get("class")
        if klass == "leaking":
            leaking.append(key)
        if klass in ("global", "leaking") and writable(ctx.host_mode(key)):
            exposed.append(key)
    return exposed, leaking


def check_container_can_change_global(ctx: Context, rule: RuleLike, params: Mapping[str, Any]) -> List[Dict[str, Any]]:
    exposed, leaking = _exposed_keys(ctx)
    allow = list(params.get("allow") or [])
    limit = int(params["list_limit"])
    out = []
    for nset in ctx.sets:
        signals = ctx.write_signals(nset)
        if not signals["signals"]:
            continue
        identity = nset.get("identity") or {}
        names = [n for n in (identity.get("name"), identity.get("pod_name"), identity.get("image"), set_label(nset)) if n]
        if any(glob_any(allow, str(n)) for n in names):
            continue
        full = signals["privileged"] or signals["proc_sys_rw"] or signals["sys_admin"]
        shared = ctx.shared_namespaces(nset)
        if full and not signals["host_userns"]:
            # Root mapped to host uid 0 in its own user namespace: the file mode lets it write,
            # handlers that call capable() (kernel.kptr_restrict, dmesg_restrict) refuse it.
            keys = list(exposed)
            reach = ("the global keys the kernel checks by file mode only, i.e. nearly every writable global key "
                     "(%d on this host; not those whose handler requires CAP_SYS_ADMIN on the host)" % len(keys))
        elif full:
            keys = list(exposed)
            reach = "every writable global key (%d on this host)" % len(keys)
        else:
            keys = [k for k in leaking if ctx.klass(k)["namespace"] in ("net", "none")]
            reach = ("its network namespace's keys wherever /proc/sys/net is writable (a remount, systemd-nspawn "
                     "--private-network)")
        for kind in shared:
            shared_keys = [k for k, i in ctx.classification.items()
                           if (i or {}).get("namespace") == kind and writable(ctx.host_mode(k))]
            if shared_keys and (full or kind == "net"):
                keys.extend(shared_keys)
                reach += "; the host's own %s namespace (shared), %d keys" % (kind, len(shared_keys))
        keys = sorted(dict.fromkeys(keys), key=lambda k: (k not in leaking, k))
        shown = keys[:limit]
        leak_note = ""
        if leaking:
            leak_note = ("On this kernel %s leak%s from a container network namespace: a write in its own namespace "
                         "changes the host's value." % (", ".join(leaking), "s" if len(leaking) == 1 else ""))
        tasks = rem.container_privilege_tasks(rule.id, identity, privileged=signals["privileged"],
                                              proc_sys_rw=signals["proc_sys_rw"], caps=signals["caps"],
                                              options=ctx.options)
        out.append(make_finding(
            ctx, rule, severity=None if full else "warning", nset=nset, key=None,
            message_vars={"signals": "; ".join(signals["signals"]), "reach": reach,
                          "examples": ", ".join(shown) + (", ..." if len(keys) > len(shown) else ""),
                          "leak_note": leak_note},
            remediation=container_where(tasks, nset),
            details={"signals": signals["signals"], "exposed_keys": keys, "leaking_keys": leaking,
                     "shared_namespaces": shared},
            evidence="privileges: %s; classes from the classifier" % ", ".join(signals["signals"]),
        ))
    return out
