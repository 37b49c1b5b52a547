# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action nsguard.sysctl.sysctl_lint: evaluate the lint rules over one host's facts.

Runs on the controller and opens no connection: the facts were gathered by
``nsguard.sysctl.sysctl_facts``. Documentation: plugins/modules/sysctl_lint.py, docs/rules.md.
The work is done by plain functions (plugin_utils.rules.evaluate); this file only turns task
arguments into their inputs and their output into a task result.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Mapping, Optional

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.nsguard.sysctl.plugins.plugin_utils import expectations as expect_mod
from ansible_collections.nsguard.sysctl.plugins.plugin_utils import rules as rules_mod
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.remediation import RemediationOptions

display = Display()

FAIL_ON = ("never", "warning", "error")

_ARGSPEC: Dict[str, Any] = {
    "facts": {"type": "dict"},
    "classification": {"type": "dict"},
    "knowledge_dirs": {"type": "list", "elements": "path", "default": []},
    "rules_dirs": {"type": "list", "elements": "path", "default": []},
    "profiles": {"type": "raw", "default": "all"},
    "expectations": {"type": "list", "elements": "dict", "default": []},
    "expectation_files": {"type": "list", "elements": "path", "default": []},
    "rule_params": {"type": "dict", "default": {}},
    "rule_overrides": {"type": "dict", "default": {}},
    "skip_rules": {"type": "list", "elements": "str", "default": []},
    "remediation": {"type": "dict", "default": {}},
    "host": {"type": "str"},
    "fail_on": {"type": "str", "default": "never", "choices": list(FAIL_ON)},
    "strict": {"type": "bool", "default": False},
}


def _plain(value: Any) -> Any:
    """Task vars hold Ansible's own containers and tagged strings; the engine wants plain Python."""
    return json.loads(json.dumps(value, default=to_text))


def threshold_reached(counts: Mapping[str, int], fail_on: str) -> bool:
    if fail_on == "error":
        return counts.get("error", 0) > 0
    if fail_on == "warning":
        return counts.get("error", 0) + counts.get("warning", 0) > 0
    return False


def summary_lines(findings: List[Mapping[str, Any]], width: int = 200) -> List[str]:
    lines = []
    for finding in findings:
        where = (finding.get("container") or {}).get("label") or "host"
        text = "%-7s %s %s [%s] %s" % (finding["severity"].upper(), finding["rule"], finding.get("key") or "-",
                                       where, finding["message"])
        lines.append(text if len(text) <= width else text[:width - 3] + "...")
    return lines


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(_ARGSPEC)

    def _path(self, path: str) -> str:
        path = os.path.expanduser(path)
        return path if os.path.isabs(path) else self._loader.path_dwim(path)

    def _knowledge(self, dirs: List[str], errors: List[Dict[str, str]]) -> Any:
        from ansible_collections.nsguard.sysctl.plugins.plugin_utils.knowledge import (KnowledgeError,
                                                                                       load_knowledge)
        if dirs:
            try:
                return load_knowledge(extra_dirs=dirs)
            except KnowledgeError as exc:  # a broken site file must not cost the audit
                errors.append({"file": getattr(exc, "file", None) or ", ".join(dirs),
                               "path": getattr(exc, "path", None) or "$",
                               "message": "%s; the collection's knowledge base is used without it" % exc})
        return load_knowledge()

    def _expectations(self, args: Mapping[str, Any], errors: List[Dict[str, str]]) -> List[Any]:
        profiles = args["profiles"]
        if isinstance(profiles, bool):
            profiles = "all" if profiles else []
        if isinstance(profiles, str) and profiles not in ("all", ""):
            profiles = [p.strip() for p in profiles.split(",") if p.strip()]
        found, problems = expect_mod.load_profiles(profiles)
        errors.extend(problems)
        for index, document in enumerate(args["expectations"]):
            more, problems = expect_mod.expectations_from_data(_plain(document), "expectations[%d]" % index)
            found.extend(more)
            errors.extend(problems)
        more, problems = expect_mod.load_expectation_files([self._path(p) for p in args["expectation_files"]])
        found.extend(more)
        errors.extend(problems)
        return found

    def run(self, tmp: Optional[str] = None, task_vars: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        dummy, args = self.validate_argument_spec(argument_spec=_ARGSPEC)

        facts = args["facts"]
        if facts is None:
            facts = (task_vars.get("ansible_facts") or {}).get("nsguard_sysctl") or task_vars.get("nsguard_sysctl")
        if not facts:
            raise AnsibleActionFail("no nsguard_sysctl facts for %s: run nsguard.sysctl.sysctl_facts first, or pass "
                                    "them with the facts option" % task_vars.get("inventory_hostname", "this host"))
        facts = _plain(facts)
        if not isinstance(facts.get("host"), Mapping):
            raise AnsibleActionFail("facts: not nsguard_sysctl facts (no 'host' mapping; see docs/facts.md)")
        host = args["host"] or task_vars.get("inventory_hostname") or (facts["host"].get("hostname"))

        errors: List[Dict[str, str]] = []
        try:
            options = RemediationOptions.from_mapping(_plain(args["remediation"]))
        except (TypeError, ValueError) as exc:
            errors.append({"file": "remediation", "path": "$", "message": "%s; the defaults are used" % exc})
            options = RemediationOptions()
        kb = self._knowledge([self._path(p) for p in args["knowledge_dirs"]], errors)
        classification = args["classification"]
        if classification is None:
            from ansible_collections.nsguard.sysctl.plugins.plugin_utils.classify import classify_host
            classification = classify_host(kb, facts)
        else:
            classification = _plain(classification)
        catalog = rules_mod.load_catalog([self._path(p) for p in args["rules_dirs"]])
        errors.extend(catalog.errors)
        expectations = self._expectations(args, errors)
        findings = rules_mod.evaluate(
            facts, classification, catalog, expectations, host=host,
            params=_plain(args["rule_params"]), overrides=_plain(args["rule_overrides"]),
            skip=args["skip_rules"], options=options, kb=kb, errors=errors)

        counts = rules_mod.count_by_severity(findings)
        for error in errors:
            display.warning("sysctl_lint on %s: %s %s: %s" % (host, error.get("file"), error.get("path"),
                                                              error.get("message")))
        result.update({
            "changed": False,
            "findings": findings,
            "counts": counts,
            "worst": rules_mod.worst_severity(findings),
            "threshold_reached": threshold_reached(counts, args["fail_on"]),
            "summary": summary_lines(findings),
            "rules": [rule.id for rule in catalog],
            "expectations": len(expectations),
            "errors": errors,
        })
        if args["strict"] and errors:
            result["failed"] = True
            result["msg"] = "%d configuration error(s): %s" % (len(errors), "; ".join(
                "%s %s: %s" % (e.get("file"), e.get("path"), e.get("message")) for e in errors))
        return result
