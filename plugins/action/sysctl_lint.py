# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action nsguard.sysctl.sysctl_lint: evaluate the lint rules over one host's facts.

Runs on the controller and opens no connection: the facts were gathered by
``nsguard.sysctl.sysctl_facts``. Documentation: plugins/modules/sysctl_lint.py, docs/rules.md.
The work is done by plain functions (plugin_utils.evaluator.evaluate); this file only turns task
arguments into their inputs and their output into a task result.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.nsguard.sysctl.plugins.plugin_utils import lint, vocabulary

display = Display()
# loaded in Ansible's main process, before it forks a worker per host (plugin_utils.lint.preload)
lint.preload()

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
    "fail_on": {"type": "str", "default": "never", "choices": list(vocabulary.FAIL_ON)},
    "strict": {"type": "bool", "default": False},
    "fail": {"type": "bool", "default": False},
    "summary_lines": {"type": "int", "default": 0},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(_ARGSPEC)

    def _print_summary(self, host: str, result: Dict[str, Any], task_vars: Dict[str, Any], limit: int,
                       failing: bool) -> str:
        """The per-host summary, printed by the action itself (one controller round trip less
        than a debug task that templates the whole result again)."""
        counts = result["counts"]
        sets = ((task_vars.get("ansible_facts") or {}).get("nsguard_sysctl") or {}).get("namespace_sets")
        head = "nsguard.sysctl %s: %s namespace sets, %d findings (%d error, %d warning, %d info)%s" % (
            host, len(sets) if isinstance(sets, list) else "?", len(result["findings"]), counts["error"],
            counts["warning"], counts["info"], "; partial: %s" % result["partial"] if result.get("partial") else "")
        lines = result["summary"][:limit]
        if len(result["summary"]) > limit:
            lines.append("... %d more (%s)" % (len(result["summary"]) - limit, "the fleet reports have all" if failing
                                               else "%s.findings has all" % lint.LINT_RESULT_VAR))
        display.display("\n".join([head] + ["  " + line for line in lines]))
        return head

    def run(self, tmp: Optional[str] = None, task_vars: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        dummy, args = self.validate_argument_spec(argument_spec=_ARGSPEC)
        ansible_facts = task_vars.get("ansible_facts") or {}
        facts = args["facts"]
        if facts is None:
            facts = ansible_facts.get("nsguard_sysctl")
        host = args["host"] or task_vars.get("inventory_hostname") or "localhost"
        if facts is None:
            raise AnsibleActionFail("no nsguard_sysctl facts for %s: run nsguard.sysctl.sysctl_facts first, or pass "
                                    "them with the facts option" % host)
        config = lint.load_config(args, lint.playbook_resolver(self._loader))
        classification = lint.plain(args["classification"]) if args["classification"] is not None else None
        outcome = lint.lint_host(facts, host, config, ansible_facts=ansible_facts, classification=classification,
                                 fail_on=args["fail_on"])
        result.update(outcome)
        if outcome.get("unlintable"):
            return result
        for error in outcome["errors"]:
            display.warning("sysctl_lint on %s: %s %s: %s" % (host, error.get("file"), error.get("path"),
                                                              error.get("message")))
        strict_fail = bool(args["strict"] and outcome["errors"])
        findings_fail = bool(not strict_fail and args["fail"] and outcome["threshold_reached"])
        if args["summary_lines"] > 0:
            result["msg"] = self._print_summary(host, outcome, task_vars, args["summary_lines"], findings_fail)
        if strict_fail:
            result["failed"] = True
            result["msg"] = "%d configuration error(s): %s" % (len(outcome["errors"]), "; ".join(
                "%s %s: %s" % (e.get("file"), e.get("path"), e.get("message")) for e in outcome["errors"]))
        elif findings_fail:
            # the audit role's fail-on decision, here: no task after this one on every host (each
            # task costs Ansible a pass over the host's facts); the findings go to the report
            for key in outcome:
                result.pop(key, None)
            result.update(lint.failed_at_threshold(outcome, host, args["fail_on"]))
        return result
