# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lint rules over gathered facts: the rule catalog and the evaluator.

The catalog is ``rules/catalog/<ID>-<name>.yml`` (one rule per file, validated against
``rules/catalog/catalog.schema.json``) plus any user rule directories. A built-in rule names
its check (``check: {builtin: ...}``), implemented in :mod:`.rules_builtin`; a user rule uses a
declarative check (``host-value``, ``set-value``, ``requested-key``). A broken file is reported
(file, JSON path, message) and skipped; every other rule still runs.

:func:`evaluate` is a pure function of its arguments::

    findings = evaluate(facts, classification, catalog, expectations, host="node1")

``facts`` is ``ansible_facts.nsguard_sysctl`` (docs/facts.md), ``classification`` the
classifier's answer for the host's keys (``classify_host``, docs/knowledge.md), and each finding
has the shape of docs/findings.md. A check that raises is reported in ``errors`` with its rule
id and the other rules still run.

Plain Python (PyYAML, jsonschema), no Ansible import.
"""
from __future__ import annotations

import fnmatch
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import yaml

from . import remediation as rem
from .datacache import load_data, memoized
from .datafile import DataFileError
from .expectations import ConstraintError, Expectation, Selector, load_json_schema, parse_constraint, schema_errors
from .vocabulary import GLOBAL_CLASSES, SEVERITIES, data_dir, finding_sort_key, set_label, worst_of

__all__ = [
    "CATALOG_DIR",
    "Catalog",
    "Context",
    "Rule",
    "evaluate",
    "load_catalog",
    "load_rule_file",
    "example_facts",
    "example_classification",
    "worst_severity",
    "count_by_severity",
    "rule_markdown",
]

CATALOG_DIR = data_dir("rules", "catalog")
SCHEMA_FILE = CATALOG_DIR / "catalog.schema.json"
_NS_TYPES = ("net", "ipc", "uts", "user", "pid")


# --------------------------------------------------------------------------- the catalog

@dataclass
class Rule:
    """One rule of the catalog (the YAML document, checked)."""

    id: str
    name: str
    title: str
    severity: str
    rationale: str
    references: List[Mapping[str, Any]]
    check: Mapping[str, Any]
    message: str
    remediation: Mapping[str, Any]
    examples: Mapping[str, Any]
    file: str
    builtin: bool = False
    enabled: bool = True
    tags: List[str] = field(default_factory=list)
    applies_to: str = "namespace-set"
    classes: List[str] = field(default_factory=list)
    parameters: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    message_vars: Mapping[str, str] = field(default_factory=dict)

    def defaults(self) -> Dict[str, Any]:
        return {name: spec["default"] for name, spec in self.parameters.items()}

    def resolve_params(self, given: Optional[Mapping[str, Any]]) -> Tuple[Dict[str, Any], List[Dict[str, str]]]:
        """The rule's parameters with ``given`` applied; a bad value is reported and the default kept."""
        params = self.defaults()
        errors: List[Dict[str, str]] = []
        for name, value in (given or {}).items():
            where = {"file": "rule_params", "path": "$.%s.%s" % (self.id, name)}
            spec = self.parameters.get(name)
            if spec is None:
                errors.append(dict(where, message="%s has no parameter %r (known: %s)" % (
                    self.id, name, ", ".join(sorted(self.parameters)) or "none")))
                continue
            problem, coerced = _coerce_param(spec, value)
            if problem:
                errors.append(dict(where, message="%s; the default %r is used" % (problem, spec["default"])))
                continue
            params[name] = coerced
        return params, errors

    def render(self, variables: Mapping[str, Any]) -> str:
        text = Template(self.message).safe_substitute({k: _text(v) for k, v in variables.items()})
        return re.sub(r"\s+", " ", text).strip()


def _text(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def _coerce_param(spec: Mapping[str, Any], value: Any) -> Tuple[Optional[str], Any]:
    kind = spec["type"]
    try:
        if kind == "integer":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            value = int(value)
        elif kind == "number":
            if isinstance(value, bool):
                raise ValueError
            value = float(value)
        elif kind == "boolean":
            if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
                value = value.lower() in ("true", "yes", "1")
            elif not isinstance(value, bool):
                raise ValueError
        elif kind == "list":
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, (list, tuple)):
                raise ValueError
            value = list(value)
        else:
            value = str(value)
    except (TypeError, ValueError):
        return "%r is not a valid %s" % (value, kind), None
    if "minimum" in spec and value < spec["minimum"]:
        return "%r is below the minimum %r" % (value, spec["minimum"]), None
    if "maximum" in spec and value > spec["maximum"]:
        return "%r is above the maximum %r" % (value, spec["maximum"]), None
    if "choices" in spec and value not in spec["choices"]:
        return "%r is not one of %s" % (value, ", ".join(map(str, spec["choices"]))), None
    return None, value


@dataclass
class Catalog:
    rules: Dict[str, Rule]
    errors: List[Dict[str, str]] = field(default_factory=list)

    def __iter__(self):
        return iter(self.rules[i] for i in sorted(self.rules))

    def __len__(self) -> int:
        return len(self.rules)

    def __contains__(self, rule_id: object) -> bool:
        return rule_id in self.rules

    def __getitem__(self, rule_id: str) -> Rule:
        return self.rules[rule_id]


def load_rule_file(path: Union[str, Path], builtin: bool = False) -> Tuple[Optional[Rule], List[Dict[str, str]]]:
    """One rule file: the rule, or None and the errors (file, JSON path, message)."""
    path = Path(path)
    source = str(path)
    try:
        # From the compiled cache when this file passed every check below before (datacache).
        loaded = load_data(path, "rule-builtin" if builtin else "rule")
    except DataFileError as exc:
        return None, [exc.as_dict()]
    document = loaded.document
    if not loaded.cached:
        problems = _rule_problems(document, path, builtin)
        if problems:
            return None, problems
        loaded.remember()
    return Rule(
        id=document["id"], name=document["name"], title=document["title"], severity=document["severity"],
        rationale=document["rationale"].strip(), references=list(document["references"]), check=document["check"],
        message=document["message"], remediation=document["remediation"], examples=document["examples"],
        file=source, builtin=builtin, enabled=document.get("enabled", True), tags=list(document.get("tags") or []),
        applies_to=document.get("applies_to", "namespace-set"), classes=list(document.get("classes") or []),
        parameters=dict(document.get("parameters") or {}), message_vars=dict(document.get("message_vars") or {}),
    ), []


def _rule_problems(document: Any, path: Path, builtin: bool) -> List[Dict[str, str]]:
    """Every error of one parsed rule document: the schema's, then the checks it cannot express."""
    from .rules_builtin import BUILTIN_CHECKS  # the checks import this module

    source = str(path)
    errors = schema_errors(document, load_json_schema(str(SCHEMA_FILE)), source)
    if errors:
        return errors
    problems: List[Dict[str, str]] = []

    def problem(json_path: str, message: str) -> None:
        problems.append({"file": source, "path": json_path, "message": message})

    if not path.name.startswith(document["id"] + "-") and not path.name.startswith(document["id"] + "."):
        problem("$.id", "the file name must start with the rule id %s" % document["id"])
    check = document["check"]
    if "builtin" in check:
        if not builtin:
            problem("$.check.builtin", "builtin checks are reserved for the collection's catalog; "
                    "use kind host-value, set-value or requested-key")
        elif check["builtin"] not in BUILTIN_CHECKS:
            problem("$.check.builtin", "unknown builtin check %r (known: %s)" % (
                check["builtin"], ", ".join(sorted(BUILTIN_CHECKS))))
    else:
        try:
            if "expect" in check:
                parse_constraint(check["expect"])
            if "match" in check:
                for selector in (check["match"] if isinstance(check["match"], list) else [check["match"]]):
                    Selector.parse(selector)
        except (ConstraintError, re.error, TypeError, AttributeError) as exc:
            problem("$.check", str(exc))
    for name, spec in (document.get("parameters") or {}).items():
        bad, dummy = _coerce_param(spec, spec["default"])
        if bad:
            problem("$.parameters.%s.default" % name, bad)
    try:
        Template(document["message"]).substitute({})
    except KeyError:
        pass  # placeholders are filled at evaluation time
    except ValueError as exc:
        problem("$.message", "bad template: %s" % exc)
    return problems


def _rule_files(directory: Path) -> List[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix in (".yml", ".yaml"))


def load_catalog(extra_dirs: Sequence[Union[str, Path]] = (), include_builtin: bool = True) -> Catalog:
    """The built-in catalog plus user rule directories. Never raises on bad input. Built once
    per process while the files stay the same (``datacache.memoized``); a fresh copy each call."""
    dirs = ([CATALOG_DIR] if include_builtin else []) + [Path(d) for d in extra_dirs]
    catalog = memoized(("catalog", tuple(str(d) for d in dirs), include_builtin), dirs,
                       lambda: _build_catalog(extra_dirs, include_builtin))
    return Catalog(dict(catalog.rules), list(catalog.errors))


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


def _build_catalog(extra_dirs: Sequence[Union[str, Path]], include_builtin: bool) -> Catalog:
    rules: Dict[str, Rule] = {}
    errors: List[Dict[str, str]] = []
    sources: List[Tuple[Path, bool]] = []
    if include_builtin:
        sources.append((CATALOG_DIR, True))
    sources.extend((Path(d), False) for d in extra_dirs)
    for directory, builtin in sources:
        if not directory.is_dir():
            errors.append({"file": str(directory), "path": "$", "message": "not a directory"})
            continue
        for path in _rule_files(directory):
            rule, problems = load_rule_file(path, builtin=builtin)
            errors.extend(problems)
            if rule is None:
                continue
            if rule.id in rules:
                errors.append({"file": str(path), "path": "$.id", "message": "rule id %s is already defined in %s" % (
                    rule.id, rules[rule.id].file)})
                continue
            rules[rule.id] = rule
    return Catalog(rules, errors)


# --------------------------------------------------------------------------- evaluation context

# identity.runtime -> the runtime name in the knowledge base (rules/knowledge/runtimes.yml).
# A running Docker container came through the Engine API (docker run's client check already
# passed), so what it meets again on re-create is the daemon's path: runc's validator.
_RUNTIME_KB = {"docker": "docker-api", "podman": "podman", "lxc": "lxc", "runc": "runc", "crun": "crun",
               "containerd": "runc", "cri-o": "runc", "crio": "runc"}


@dataclass
class Context:
    """Everything a check reads, computed once per evaluation."""

    facts: Mapping[str, Any]
    classification: Mapping[str, Mapping[str, Any]]
    host: str
    expectations: Sequence[Expectation] = ()
    options: rem.RemediationOptions = field(default_factory=rem.RemediationOptions)
    kb: Any = None
    _scope_cache: Dict[Tuple[str, Optional[str]], Dict[str, Any]] = field(default_factory=dict)
    _match_cache: Dict[str, List[Expectation]] = field(default_factory=dict)

    @property
    def host_facts(self) -> Mapping[str, Any]:
        return self.facts.get("host") or {}

    @property
    def kernel(self) -> Optional[str]:
        return (self.host_facts.get("kernel") or {}).get("release")

    @property
    def sets(self) -> List[Mapping[str, Any]]:
        return [s for s in (self.facts.get("namespace_sets") or []) if isinstance(s, Mapping)]

    @property
    def persisted(self) -> Mapping[str, Any]:
        return self.host_facts.get("persisted") or {}

    def host_value(self, key: str) -> Optional[str]:
        record = (self.host_facts.get("keys") or {}).get(key)
        return record.get("value") if isinstance(record, Mapping) else None

    def host_mode(self, key: str) -> Optional[str]:
        for section in ("keys", "unreadable"):
            record = (self.host_facts.get(section) or {}).get(key)
            if isinstance(record, Mapping):
                return record.get("mode")
        return None

    def persisted_entry(self, key: str) -> Optional[Mapping[str, Any]]:
        entry = (self.persisted.get("keys") or {}).get(key)
        return entry if isinstance(entry, Mapping) else None

    def scope(self, key: str, value: Optional[str] = None) -> Optional[Dict[str, Any]]:
        if self.kb is None:
            return None
        cache_key = (key, value)
        if cache_key not in self._scope_cache:
            from .classify import scope  # the classifier (issue 3); only needed with a knowledge base

            self._scope_cache[cache_key] = scope(self.kb, key, kernel=self.kernel, value=value)
        return self._scope_cache[cache_key]

    def klass(self, key: str) -> Dict[str, Any]:
        """Class, namespace and evidence of ``key`` on this host: the classifier's answer, or the
        knowledge alone for a key the host does not have (a typo, an unloaded module)."""
        known = self.classification.get(key)
        if isinstance(known, Mapping) and known.get("class"):
            return {"class": known["class"], "namespace": known.get("namespace") or "none",
                    "evidence": known.get("evidence") or "", "conflict": known.get("conflict")}
        scoped = self.scope(key)
        if scoped:
            return {"class": scoped["class"], "namespace": scoped["namespace"],
                    "evidence": "not on this host; " + scoped["evidence"], "conflict": None}
        return {"class": "unknown", "namespace": None, "evidence": "not on this host and no knowledge base given",
                "conflict": None}

    def runtime_name(self, nset: Mapping[str, Any]) -> Optional[str]:
        """The knowledge base's name of the path the set's sysctls took (``kubelet`` for a pod)."""
        identity = nset.get("identity") or {}
        return "kubelet" if identity.get("pod_name") else _RUNTIME_KB.get((identity.get("runtime") or "").lower())

    def runtime_verdict(self, key: str, nset: Mapping[str, Any], value: Optional[str] = None) -> Dict[str, Any]:
        """What the set's runtime does with ``key`` (knowledge base), or {} when unknown."""
        name = self.runtime_name(nset)
        scoped = self.scope(key, value)
        if not scoped or not name:
            return {}
        verdict = dict((scoped.get("runtimes") or {}).get(name) or {})
        if verdict:
            verdict["runtime"] = name
        return verdict

    def set_value(self, nset: Mapping[str, Any], key: str) -> Tuple[Optional[str], str]:
        """The set's value of ``key`` and how it is known: ``differs`` (own value), ``same``
        (the host's), ``absent`` (the key does not exist there), ``unknown``."""
        view = nset.get("view") or {}
        if key in (view.get("keys") or {}):
            record = view["keys"][key]
            return (record.get("value") if isinstance(record, Mapping) else record), "differs"
        differs = view.get("differs") or {}
        if key in differs:
            return (differs[key] or {}).get("container"), "differs"
        if key in (view.get("absent") or []):
            return None, "absent"
        if key in (view.get("unreadable") or {}):
            return None, "unknown"
        if view.get("mode") == "full" and view.get("keys"):
            return None, "absent"
        if self.host_value(key) is not None and not (nset.get("errors") and not view):
            return self.host_value(key), "same"
        return None, "unknown"

    def shared_namespaces(self, nset: Mapping[str, Any]) -> List[str]:
        """Namespace types (net, ipc, uts) the set shares with the host."""
        shared = set(nset.get("shares_host") or [])
        differs = set(nset.get("differs_from_host") or [])
        for kind in ("net", "ipc", "uts"):
            if nset.get("host_%s" % ("network" if kind == "net" else kind)):
                shared.add(kind)
            elif kind not in differs and "differs_from_host" in nset and nset.get("ns"):
                shared.add(kind)
        return sorted(k for k in shared if k in ("net", "ipc", "uts"))

    def matched(self, nset: Mapping[str, Any]) -> List[Expectation]:
        set_id = str(nset.get("id"))
        if set_id not in self._match_cache:
            # a profile's expectations share its selectors: test each selector tuple once per set
            # (9 profiles, 90 expectations: a tenth of the work, 2-3 ms a host of 30 sets)
            verdicts: Dict[int, bool] = {}
            matched = []
            for expectation in self.expectations:
                verdict = verdicts.get(id(expectation.selectors))
                if verdict is None:
                    verdict = verdicts[id(expectation.selectors)] = expectation.matches(nset)
                if verdict:
                    matched.append(expectation)
            self._match_cache[set_id] = matched
        return self._match_cache[set_id]

    def write_signals(self, nset: Mapping[str, Any]) -> Dict[str, Any]:
        """How a set could write global sysctls: privileged, /proc/sys read-write, or
        CAP_SYS_ADMIN / CAP_NET_ADMIN, each only counting in the host's user namespace."""
        priv = nset.get("privileges") or {}
        caps = {str(c).upper() for c in (priv.get("capabilities") or [])}
        caps = {c if c.startswith("CAP_") else "CAP_" + c for c in caps}
        host_userns = priv.get("userns_is_host")
        if host_userns is None:
            host_userns = "user" not in (nset.get("differs_from_host") or [])
        # Root of another user namespace mapped to the host's uid 0 (unshare -U -r run by root):
        # the kernel's sysctl check for most global tables is the file mode against the euid
        # (uid 0 on the host), not a capability, so a read-write /proc/sys is enough (measured,
        # tests/reliability/test_proc_sys_rw.py). Its capabilities still count only in its own
        # namespace: inherited mounts are locked there, it cannot remount /proc/sys.
        host_root = bool(priv.get("root_is_host_root")) and not host_userns
        signals = []
        if host_userns:
            if priv.get("privileged"):
                signals.append("privileged")
            if priv.get("proc_sys_rw"):
                signals.append("/proc/sys mounted read-write")
            for cap in ("CAP_SYS_ADMIN", "CAP_NET_ADMIN"):
                if cap in caps:
                    signals.append("%s in the host's user namespace" % cap)
        elif host_root and priv.get("proc_sys_rw"):
            signals.append("/proc/sys mounted read-write and its root is the host's root (uid_map 0 -> 0)")
        return {"signals": signals, "host_userns": bool(host_userns),
                "privileged": bool(priv.get("privileged")) and bool(host_userns),
                "proc_sys_rw": bool(priv.get("proc_sys_rw")) and (bool(host_userns) or host_root),
                "sys_admin": "CAP_SYS_ADMIN" in caps and bool(host_userns),
                "net_admin": "CAP_NET_ADMIN" in caps and bool(host_userns),
                "caps": sorted(caps & {"CAP_SYS_ADMIN", "CAP_NET_ADMIN"})}


# --------------------------------------------------------------------------- findings

def container_of(nset: Optional[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
    if not nset:
        return None
    identity = nset.get("identity") or {}
    out = {k: identity.get(k) for k in ("runtime", "id", "name", "image", "pod_name", "pod_namespace", "netns_name")}
    out["label"] = set_label(nset)
    out["pid"] = nset.get("representative_pid") or (nset.get("init") or {}).get("pid")
    return out


def make_finding(ctx: Context, rule: Rule, *, message_vars: Mapping[str, Any], severity: Optional[str] = None,
                 nset: Optional[Mapping[str, Any]] = None, key: Optional[str] = None,
                 values: Optional[Mapping[str, Any]] = None, klass: Optional[Mapping[str, Any]] = None,
                 remediation: Optional[Mapping[str, Any]] = None, details: Optional[Mapping[str, Any]] = None,
                 evidence: Optional[str] = None) -> Dict[str, Any]:
    """A finding of docs/findings.md."""
    full_values = {"host": None, "container": None, "requested": None, "expected": None, "persisted": None}
    full_values.update({k: v for k, v in (values or {}).items() if k in full_values})
    label = set_label(nset) if nset else "host"
    variables = {"key": key, "host": ctx.host, "label": label, "kernel": ctx.kernel,
                 "class": (klass or {}).get("class"), "namespace": (klass or {}).get("namespace")}
    variables.update(message_vars)
    return {
        "rule": rule.id,
        "rule_name": rule.name,
        "severity": severity or rule.severity,
        "host": ctx.host,
        "set_id": nset.get("id") if nset else None,
        "container": container_of(nset),
        "key": key,
        "values": full_values,
        "class": (klass or {}).get("class"),
        "namespace": (klass or {}).get("namespace"),
        "evidence": evidence if evidence is not None else (klass or {}).get("evidence"),
        "message": rule.render(variables),
        "remediation": dict(remediation or rem.remediation("none", [])),
        "details": dict(details or {}),
    }


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
    from .rules_builtin import BUILTIN_CHECKS, DECLARATIVE_CHECKS

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


# --------------------------------------------------------------------------- catalog examples

_BASE_FACTS: Dict[str, Any] = {
    "schema_version": 1,
    "host": {
        "kernel": {"release": "6.18.44", "version": "#1 SMP", "machine": "x86_64"},
        "hostname": "example",
        "cpus": 2,
        "ns": {"net": 4026531833, "ipc": 4026531839, "uts": 4026531838, "user": 4026531837,
               "pid": 4026531836, "mnt": 4026531832, "cgroup": 4026531835},
        "keys": {},
        "unreadable": {},
        "persisted": {"files": [], "keys": {}, "errors": []},
    },
    "namespace_sets": [],
    "conntrack": {"loaded": False},
    "probe": {"enabled": True, "namespaces": list(_NS_TYPES), "absent": [], "mode_differs": {},
              "value_differs": [], "owner": {}, "unknown": [], "errors": []},
    "errors": [],
}

_BASE_SET: Dict[str, Any] = {
    "ns": {"net": 4026532246, "ipc": 4026532247, "uts": 4026532245, "user": 4026531837, "pid": 4026532248},
    "differs_from_host": ["net", "ipc", "uts", "pid"],
    "shares_host": ["user", "cgroup"],
    "pids": [1234],
    "pid_count": 1,
    "representative_pid": 1234,
    "init": {"pid": 1234, "comm": "sleep", "cmdline": "sleep 1000", "ppid": 1},
    "identity": {"runtime": "unknown", "id": None, "name": None, "image": None, "pod_name": None,
                 "pod_namespace": None, "netns_name": None, "labels": {}, "sources": []},
    "requested": {},
    "host_network": False,
    "host_ipc": False,
    "host_uts": False,
    "privileges": {"cap_eff": "00000000a80425fb", "capabilities": [], "privileged": False,
                   "proc_sys_rw": False, "userns_is_host": True},
    "view": {"mode": "diff", "absent": [], "mode_differs": {}, "differs": {}, "requested_values": {},
             "keys": {}, "unreadable": {}},
    "conntrack_count": None,
    "errors": [],
}


def _merge(base: Any, extra: Any) -> Any:
    if isinstance(base, Mapping) and isinstance(extra, Mapping):
        out = dict(base)
        for key, value in extra.items():
            out[key] = _merge(base.get(key), value) if key in base else value
        return out
    return extra


def example_facts(partial: Mapping[str, Any]) -> Dict[str, Any]:
    """A catalog example's partial facts on a minimal host (each set on a minimal set)."""
    import copy

    partial = copy.deepcopy(dict(partial))
    sets = partial.pop("namespace_sets", [])
    facts = _merge(copy.deepcopy(_BASE_FACTS), partial)
    facts["namespace_sets"] = []
    for index, nset in enumerate(sets):
        full = _merge(copy.deepcopy(_BASE_SET), nset)
        full.setdefault("id", "set%d" % index)
        if "id" not in nset:
            full["id"] = "net:%s/ipc:%s/uts:%s" % (full["ns"].get("net"), full["ns"].get("ipc"), full["ns"].get("uts"))
        facts["namespace_sets"].append(full)
    return facts


def example_classification(classes: Optional[Mapping[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """A catalog example's ``classes`` as the classifier would answer."""
    out = {}
    for key, spec in (classes or {}).items():
        spec = {"class": spec} if isinstance(spec, str) else dict(spec)
        namespace = spec.get("namespace") or ("none" if spec["class"] in GLOBAL_CLASSES else key.split(".", 1)[0])
        out[key] = {"class": spec["class"], "namespace": namespace, "evidence": "example", "decided_by": "knowledge",
                    "conflict": None}
    return out


def glob_any(patterns: Iterable[str], text: str) -> bool:
    return any(fnmatch.fnmatchcase(text, p) for p in patterns)


def ceil_to(value: float, step: int) -> int:
    return int(math.ceil(value / step) * step)


# --------------------------------------------------------------------------- documentation

def rule_markdown(rule: Rule) -> str:
    """docs/rules/<ID>.md for a rule, generated from its catalog file (tests keep them in sync)."""
    def block(data: Any) -> str:
        return "```yaml\n%s```\n" % yaml.safe_dump(data, sort_keys=False, width=100, allow_unicode=True)

    lines = [
        "<!-- generated from rules/catalog/%s by plugins/plugin_utils/rules.py rule_markdown(); do not edit -->"
        % Path(rule.file).name,
        "# %s %s" % (rule.id, rule.name),
        "",
        "**%s**" % rule.title,
        "",
        "| severity | applies to | classes | tags |",
        "|---|---|---|---|",
        "| %s | %s | %s | %s |" % (rule.severity, rule.applies_to, ", ".join(rule.classes) or "-",
                                   ", ".join(rule.tags) or "-"),
        "",
        "## Why",
        "",
        rule.rationale,
        "",
        "## Message",
        "",
        "```",
        " ".join(rule.message.split()),
        "```",
        "",
    ]
    if rule.message_vars:
        lines += ["| variable | meaning |", "|---|---|"]
        lines += ["| `$%s` | %s |" % (k, v) for k, v in rule.message_vars.items()]
        lines.append("")
    if rule.parameters:
        lines += ["## Parameters", "",
                  "Set them with `nsguard_sysctl_rule_params: {%s: {name: value}}` (action option `rule_params`)."
                  % rule.id, "", "| parameter | type | default | description |", "|---|---|---|---|"]
        for name, spec in rule.parameters.items():
            lines.append("| `%s` | %s | `%s` | %s |" % (name, spec["type"], json.dumps(spec["default"]),
                                                        " ".join(str(spec["description"]).split())))
        lines.append("")
    lines += ["## Remediation", "", "Where: **%s**. %s" % (rule.remediation["where"],
                                                           " ".join(rule.remediation["summary"].split())), ""]
    if rule.remediation.get("template"):
        lines.append(block(rule.remediation["template"]))
    lines += ["## Examples", ""]
    for kind in ("positive", "negative"):
        for example in rule.examples[kind]:
            lines += ["### %s: %s" % ("Reported" if kind == "positive" else "Not reported", example["description"]), ""]
            shown = {"facts": example["facts"]}
            for extra in ("classes", "expectations", "params"):
                if example.get(extra):
                    shown[extra] = example[extra]
            lines.append(block(shown))
    lines += ["## References", ""]
    for ref in rule.references:
        lines.append("- [%s](%s)%s" % (ref["title"], ref["url"], " (%s)" % ref["kind"] if ref.get("kind") else ""))
    return "\n".join(lines).rstrip() + "\n"


# Imported here and not only where they are used: Ansible imports this module in its main
# process (with the sysctl_lint action) before it forks a worker per host, and an import left
# to the worker was paid again in every fork (classify, knowledge, the checks: about 10 ms a host).
from . import classify as _classify  # noqa: E402,F401  pylint: disable=wrong-import-position
from . import rules_builtin as _rules_builtin  # noqa: E402,F401  pylint: disable=wrong-import-position
from ..module_utils import probe_facts as _probe_facts  # noqa: E402,F401  the probe reader of classify and NSG004
