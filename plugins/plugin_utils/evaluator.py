# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The evaluator: every enabled rule of a catalog over one host's facts.

:func:`evaluate` is a pure function of its arguments::

    findings = evaluate(facts, classification, catalog, expectations, host="node1")

``facts`` is ``ansible_facts.nsguard_sysctl`` (docs/facts.md), ``classification`` the
classifier's answer for the host's keys (``classify_host``, docs/knowledge.md), and each finding
has the shape of docs/findings.md. A check that raises is reported in ``errors`` with its rule
id and the other rules still run. The checks are :mod:`.rules_builtin`'s, the rules
:mod:`.rule_catalog`'s, the context :mod:`.rule_context`'s.

Plain Python, no Ansible import.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

# classify and the probe reader are imported here and not only where they are used: Ansible
# imports this module in its main process (with the sysctl_lint action) before it forks a
# worker per host, and an import left to the worker was paid again in every fork (classify,
# knowledge, the checks: about 10 ms a host).
from . import classify as _classify  # noqa: F401
from . import remediation as rem
from ..module_utils import probe_facts as _probe_facts  # noqa: F401  the probe reader of classify and NSG004
from .rule_catalog import Catalog, Rule, load_catalog
from .expectations import Expectation
from .rule_context import Context
from .rules_builtin import BUILTIN_CHECKS, DECLARATIVE_CHECKS
from .vocabulary import SEVERITIES, finding_sort_key, worst_of

__all__ = ["Check", "count_by_severity", "evaluate", "preload", "worst_severity"]


def preload() -> None:
    """Load the collection's own knowledge base, catalog and profiles into this process's memo.

    Meant for the import of an action plugin: Ansible imports it in its main process (the
    strategy reads the class) before it forks a worker per host, so every worker inherits the
    loaded data instead of loading it again (a few ms a host from the disk cache, 0.3 s
    without). Never raises: a fault shows when the task itself loads.
    """
    try:
        from .knowledge import load_knowledge
        load_knowledge()
        load_catalog()
        from .expectations import load_profiles
        load_profiles()
    except Exception:  # noqa: BLE001 - the task reports it, with its context
        pass


def worst_severity(findings: Iterable[Mapping[str, Any]]) -> Optional[str]:
    return worst_of(finding["severity"] for finding in findings)


def count_by_severity(findings: Iterable[Mapping[str, Any]]) -> Dict[str, int]:
    counts = {name: 0 for name in SEVERITIES}
    for finding in findings:
        counts[finding["severity"]] = counts.get(finding["severity"], 0) + 1
    return counts


Check = Callable[[Context, Rule, Mapping[str, Any]], List[Dict[str, Any]]]


def evaluate(facts: Mapping[str, Any], classification: Mapping[str, Mapping[str, Any]], catalog: Catalog,
             expectations: Sequence[Expectation] = (), host: Optional[str] = None, *,
             params: Optional[Mapping[str, Mapping[str, Any]]] = None,
             overrides: Optional[Mapping[str, Mapping[str, Any]]] = None,
             skip: Iterable[str] = (), options: Optional[rem.RemediationOptions] = None, kb: Any = None,
             errors: Optional[List[Dict[str, str]]] = None) -> List[Dict[str, Any]]:
    """Run every enabled rule of ``catalog`` over one host's facts; return the findings.

    ``params``: rule id -> parameter values; ``overrides``: rule id -> ``{enabled, severity}``;
    ``skip``: rule ids or names not to run; ``kb``: the knowledge base, for runtime error texts
    and keys the host does not have; ``errors``: a list that receives configuration and check
    errors (each names the rule, file or option).
    """
    errors = errors if errors is not None else []
    params = params or {}
    overrides = overrides or {}
    skip = set(skip or ())
    for rule_id in list(params) + list(overrides):
        if rule_id not in catalog:
            errors.append({"file": "rule_params" if rule_id in params else "rule_overrides",
                           "path": "$.%s" % rule_id, "message": "no rule %s in the catalog" % rule_id})
    ctx = Context(facts=facts, classification=classification or {},
                  host=host or (facts.get("host") or {}).get("hostname") or "localhost",
                  expectations=list(expectations), options=options or rem.RemediationOptions(), kb=kb)
    findings: List[Dict[str, Any]] = []
    for rule in catalog:
        override = overrides.get(rule.id) or {}
        if not isinstance(override, Mapping):  # reported and ignored, as docs/rules.md promises
            errors.append({"file": "rule_overrides", "path": "$.%s" % rule.id,
                           "message": "%r is not a mapping of enabled/severity; ignored" % (override,)})
            override = {}
        enabled = override.get("enabled", rule.enabled)
        if not enabled or rule.id in skip or rule.name in skip:
            continue
        severity = override.get("severity")
        if severity is not None and severity not in SEVERITIES:
            errors.append({"file": "rule_overrides", "path": "$.%s.severity" % rule.id,
                           "message": "%r is not one of %s" % (severity, ", ".join(SEVERITIES))})
            severity = None
        given = params.get(rule.id)
        if given is not None and not isinstance(given, Mapping):
            errors.append({"file": "rule_params", "path": "$.%s" % rule.id,
                           "message": "%r is not a mapping of parameters; the defaults are used" % (given,)})
            given = None
        rule_params, problems = rule.resolve_params(given)
        errors.extend(problems)
        check = (BUILTIN_CHECKS.get(rule.check.get("builtin")) if "builtin" in rule.check
                 else DECLARATIVE_CHECKS.get(rule.check.get("kind")))
        if check is None:
            errors.append({"file": rule.file, "path": "$.check", "message": "no implementation for this check"})
            continue
        try:
            produced = check(ctx, rule, rule_params)
        except Exception as exc:  # one broken check must not cost the other rules
            errors.append({"file": rule.file, "path": "$.check", "rule": rule.id,
                           "message": "%s failed on host %s: %s: %s" % (rule.id, ctx.host, type(exc).__name__, exc)})
            continue
        for finding in produced:
            if severity is not None:
                finding["severity"] = severity
            findings.append(finding)
    findings.sort(key=finding_sort_key)
    return findings
