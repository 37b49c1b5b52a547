# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rule catalog: the :class:`Rule` model, its loader and the rule pages it generates.

The catalog is ``rules/catalog/<ID>-<name>.yml`` (one rule per file, validated against
``rules/catalog/catalog.schema.json``) plus any user rule directories. A built-in rule names
its check (``check: {builtin: ...}``), implemented in :mod:`.rules_builtin`; a user rule uses a
declarative check (``host-value``, ``set-value``, ``requested-key``). A broken file is reported
(file, JSON path, message) and skipped; every other rule still runs.

The loader reads the names of the built-in checks from :mod:`.rules_builtin` (a built-in rule
naming no check is a broken file); the checks know a rule only through
:class:`.rule_context.RuleLike`, so the import goes one way (docs/architecture.md). The
evaluator is :mod:`.evaluator`.

Plain Python (PyYAML, jsonschema), no Ansible import.
"""
from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import yaml

from ..module_utils.probe_facts import PROBE_TYPES
from .datacache import load_data, memoized
from .datafile import DataFileError
from .expectations import ConstraintError, Selector, load_json_schema, parse_constraint, schema_errors
from .facts_schema import SCHEMA_VERSION, upgrade_facts
from .rules_builtin import BUILTIN_CHECKS
from .vocabulary import GLOBAL_CLASSES, data_dir

__all__ = [
    "CATALOG_DIR",
    "Catalog",
    "Rule",
    "load_catalog",
    "load_rule_file",
    "example_facts",
    "example_classification",
    "rule_markdown",
]

CATALOG_DIR = data_dir("rules", "catalog")
SCHEMA_FILE = CATALOG_DIR / "catalog.schema.json"


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

# --------------------------------------------------------------------------- catalog examples

_BASE_FACTS: Dict[str, Any] = {
    "schema_version": SCHEMA_VERSION,
    "host": {
        "kernel": {"release": "6.18.44", "version": "#1 SMP", "machine": "x86_64"},
        "hostname": "example",
        "cpus": 2,
        "ns": {"net": 4026531833, "ipc": 4026531839, "uts": 4026531838, "user": 4026531837,
               "pid": 4026531836, "mnt": 4026531832, "cgroup": 4026531835},
        "keys": {},
        "modes": {},
        "unreadable": {},
        "persisted": {"files": [], "keys": {}, "errors": []},
    },
    "namespace_sets": [],
    "conntrack": {"loaded": False},
    "probe": {"enabled": True, "namespaces": list(PROBE_TYPES), "absent": [], "mode_differs": {},
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
    """A catalog example's partial facts on a minimal host (each set on a minimal set), in the
    current shape. ``partial`` is of the current ``schema_version`` unless it names another
    (``schema_version: 1``: an example written for version 1, converted by
    ``facts_schema.upgrade_facts`` like any other facts of that version)."""
    partial = copy.deepcopy(dict(partial))
    if partial.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
        upgraded, problem = upgrade_facts(partial)
        if problem:
            raise ValueError("example facts: %s" % problem)
        partial = upgraded
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



# --------------------------------------------------------------------------- documentation

def rule_markdown(rule: Rule) -> str:
    """docs/rules/<ID>.md for a rule, generated from its catalog file (tests keep them in sync)."""
    def block(data: Any) -> str:
        return "```yaml\n%s```\n" % yaml.safe_dump(data, sort_keys=False, width=100, allow_unicode=True)

    lines = [
        "<!-- generated from rules/catalog/%s by plugins/plugin_utils/rule_catalog.py rule_markdown(); do not edit -->"
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


