# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Expectations met by the host or by every set (NSG003 and NSG009), and the one value meeting
several constraints (also read by the declarative checks)."""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .. import remediation as rem
from ..expectations import Constraint, Expectation
from ..rule_context import Context, RuleLike, make_finding
from ..vocabulary import PER_NAMESPACE_CLASSES, set_label, squash, worst_of
from .common import container_where, spec_tasks


def combined_target(constraints: Sequence[Constraint], current: Optional[str]) -> Optional[str]:
    """One value meeting every constraint (several workloads may ask for the same key), or None."""
    by_field: Dict[Optional[int], List[Constraint]] = {}
    for constraint in constraints:
        by_field.setdefault(constraint.field, []).append(constraint)
    if None in by_field and len(by_field) > 1:
        return None
    parts = str(current).split() if current is not None else []
    for index, group in by_field.items():
        equals = {squash(c.value) for c in group if c.op == "equals"}
        mins = [c.value for c in group if c.op == "min"]
        maxes = [c.value for c in group if c.op == "max"]
        if len(equals) > 1:
            return None
        if equals:
            candidate = equals.pop()
        elif mins:
            candidate = Constraint("min", max(mins)).target()
        elif maxes:
            candidate = Constraint("max", min(maxes)).target()
        else:
            one_of = [c for c in group if c.op == "one_of"]
            candidate = squash(one_of[0].value[0]) if one_of else None
        if candidate is None or not all(Constraint(c.op, c.value).check(candidate) for c in group):
            return None
        if index is None:
            return candidate
        if index >= len(parts):
            return None
        parts[index] = candidate
    return " ".join(parts) if parts else None


def _profiles(expectations: Sequence[Expectation]) -> str:
    seen: List[str] = []
    for exp in expectations:
        if exp.title not in seen:
            seen.append(exp.title)
    return ", ".join(seen)


def expectation_findings(ctx: Context, rule: RuleLike, per_namespace: bool) -> List[Dict[str, Any]]:
    """NSG003 (global keys, checked against the host) and NSG009 (per-namespace keys, checked
    against the set's own namespace)."""
    out = []
    by_key_all: Dict[str, List[Tuple[Mapping[str, Any], Expectation]]] = {}
    for nset in ctx.sets:
        for exp in ctx.matched(nset):
            by_key_all.setdefault(exp.key, []).append((nset, exp))
    for key in sorted(by_key_all):
        info = ctx.klass(key)
        if (info["class"] in PER_NAMESPACE_CLASSES) != per_namespace:
            continue
        host_value = ctx.host_value(key)
        all_constraints = [c for dummy, exp in by_key_all[key] for c in exp.constraints]
        host_target = combined_target(all_constraints, host_value)
        by_set: Dict[str, Tuple[Mapping[str, Any], List[Expectation]]] = {}
        for nset, exp in by_key_all[key]:
            by_set.setdefault(str(nset.get("id")), (nset, []))[1].append(exp)
        for nset, exps in by_set.values():
            observed, state = (ctx.set_value(nset, key) if per_namespace else (host_value, "same"))
            failing = [(exp, c) for exp in exps for c in exp.constraints if c.check(observed) is not True]
            if not failing:
                continue
            severity = worst_of(exp.severity for exp, dummy in failing)
            expected = " and ".join(dict.fromkeys(c.describe() for dummy, c in failing))
            own = [c for exp in exps for c in exp.constraints]
            target = combined_target(own, observed)
            notes = []
            if not per_namespace:
                if host_target is None:
                    # one workload's value would break another: no task, say who disagrees
                    others = sorted({"%s (%s %s)" % (set_label(s), key, e.describe())
                                     for s, e in by_key_all[key] if str(s.get("id")) != str(nset.get("id"))})
                    notes.append("no single value satisfies every workload on this host%s" % (
                        ": " + "; ".join(others) if others else ""))
                target = host_target
            why = " ".join(dict.fromkeys(exp.why for exp, dummy in failing if exp.why))
            if per_namespace:
                tasks = spec_tasks(ctx, rule, nset, {key: target}) if target else []
                remediation = container_where(tasks, nset, "; ".join(notes), ctx, [key] if target else [])
            else:
                tasks = ([rem.host_sysctl_task(rule.id, key, target, persisted=ctx.persisted, options=ctx.options,
                                               why="%s expects %s" % (set_label(nset), expected))] if target else [])
                remediation = rem.remediation("host", tasks, "; ".join(notes))
            shown = observed if observed is not None else ("absent" if state == "absent" else "not available")
            out.append(make_finding(
                ctx, rule, severity=severity, nset=nset, key=key, klass=info,
                values={"host": host_value, "container": observed if per_namespace else host_value,
                        "expected": expected, "persisted": (ctx.persisted_entry(key) or {}).get("value")},
                message_vars={"profiles": _profiles([e for e, dummy in failing]), "expected": expected,
                              "observed": squash(shown), "host_value": host_value, "why": why,
                              "target": target},
                remediation=remediation,
                details={"expectations": [{"profile": e.profile, "constraint": c.describe(), "severity": e.severity,
                                           "source": e.source, "references": list(e.references)}
                                          for e, c in failing],
                         "target": target, "conflict": host_target is None and not per_namespace},
            ))
    return out
