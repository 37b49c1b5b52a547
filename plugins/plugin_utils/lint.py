# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One host's facts -> its lint result, on the controller. Shared by the two actions.

``sysctl_lint`` (once per host, in the audit role) and ``sysctl_report`` (for every host whose
lint result it cannot trust, e.g. everything read from a fact cache) both call
:func:`lint_host`, so a report is never built from findings a target or a cache supplied:
findings are computed here, from facts that passed :mod:`facts_schema`, with a knowledge base,
rule catalog and expectations that live on the controller (:func:`load_config`, once per
process and option set).

The result is the task result the lint action returns (``findings``, ``counts``,
``threshold_reached``, ``summary``, ...). :data:`RESULT_MARK` in it says which facts it was
computed from, so the report can tell a fresh result from one that predates the facts.
Plain Python, no Ansible import.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from . import expectations as expect_mod
from . import evaluator, rule_catalog
from .facts_schema import LINT_RESULT_VAR, partial_gather, read_facts, shadowing_facts
from .remediation import RemediationOptions
from .vocabulary import fail_on_reached

__all__ = ["LINT_RESULT_VAR", "RESULT_MARK", "LINT_OPTIONS", "LintConfig", "load_config", "config_fingerprint",
           "lint_host", "summary_lines", "failed_at_threshold", "failed_on_findings", "result_is_current",
           "preload", "playbook_resolver"]

# Key of the lint result that names what it was computed from: {"version", "gathered_at",
# "config"} (config: config_fingerprint of the options).
RESULT_MARK = "nsguard_lint"
RESULT_VERSION = 1
# The options of the lint action that shape findings (the report action's ``lint`` option takes these).
LINT_OPTIONS = frozenset({"knowledge_dirs", "rules_dirs", "profiles", "expectations", "expectation_files",
                          "rule_params", "rule_overrides", "skip_rules", "remediation"})
# What a result that failed at fail_on keeps (failed_at_threshold): the rest is the reports' (the
# callback prints a failed result whole, and findings carry their remediation tasks)
_FAILED_KEEPS = ("changed", "counts", "worst", "threshold_reached", "expectations", "errors", "partial", RESULT_MARK)


def preload() -> None:
    """Everything a host's lint loads, loaded now: the knowledge, catalog and profiles
    (evaluator.preload) and the compiled facts schema (~40 ms). The actions call it at import, which
    Ansible does in its main process before it forks a worker per host, so no worker pays it."""
    evaluator.preload()
    try:
        from .facts_schema import _fast_validator
        _fast_validator()
    except Exception:  # noqa: BLE001 - the task reports a broken schema, with its context
        pass


def plain(value: Any) -> Any:
    """Ansible's tagged containers and strings, as plain Python (the engine's input)."""
    return json.loads(json.dumps(value, default=str))


@dataclass
class LintConfig:
    """What the rules need besides the facts: loaded once, used for every host."""

    kb: Any
    catalog: Any
    expectations: List[Any]
    params: Dict[str, Any]
    overrides: Dict[str, Any]
    skip: List[str]
    options: RemediationOptions
    errors: List[Dict[str, Any]] = field(default_factory=list)   # configuration errors, each named
    fingerprint: Optional[str] = None   # config_fingerprint of the options it was loaded from
    # classify.classification_key -> classify_host's answer, for the hosts of a fleet that share
    # kernel, probe and key set (the report lints thousands in one process); read-only, shared
    _classified: Dict[Any, Dict[str, Any]] = field(default_factory=dict, repr=False)
    CLASSIFIED_MAX = 64   # ~1 MiB each at ~1,300 keys

    def classification(self, facts: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
        """``classify_host(self.kb, facts)``, computed once for every host with the same key."""
        from .classify import classification_key, classify_host
        key = classification_key(facts)
        found = self._classified.get(key)
        if found is None:
            found = classify_host(self.kb, facts)
            if len(self._classified) >= self.CLASSIFIED_MAX:
                self._classified.pop(next(iter(self._classified)))  # the oldest
            self._classified[key] = found
        return found


def _knowledge(dirs: Sequence[str], errors: List[Dict[str, Any]]) -> Any:
    from .knowledge import KnowledgeError, load_knowledge
    if dirs:
        try:
            return load_knowledge(extra_dirs=list(dirs))
        except KnowledgeError as exc:  # a broken site file must not cost the audit
            errors.append({"file": getattr(exc, "file", None) or ", ".join(dirs),
                           "path": getattr(exc, "path", None) or "$",
                           "message": "%s; the collection's knowledge base is used without it" % exc})
    return load_knowledge()


def _profiles(profiles: Any) -> Any:
    if isinstance(profiles, bool):
        return "all" if profiles else []
    if isinstance(profiles, str) and profiles not in ("all", ""):
        return [p.strip() for p in profiles.split(",") if p.strip()]
    return profiles


def playbook_resolver(loader: Any) -> Callable[[str], str]:
    """Paths as a task gives them: ``~`` expanded, relative ones found the way Ansible finds a
    playbook's files (``loader.path_dwim``)."""
    def resolve(path: str) -> str:
        path = os.path.expanduser(path)
        return path if os.path.isabs(path) else loader.path_dwim(path)
    return resolve


def config_fingerprint(args: Mapping[str, Any]) -> str:
    """A short digest of the lint options in ``args`` (:data:`LINT_OPTIONS`; an option left out
    and one given empty or as its default are the same), so the report can tell whether it lints a host with the
    options the host's lint task had."""
    import hashlib
    given = {name: args[name] for name in sorted(LINT_OPTIONS)
             if args.get(name) not in (None, [], {}, "") and not (name == "profiles" and args[name] == "all")}
    text = json.dumps(plain(given), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def load_config(args: Mapping[str, Any], resolve: Callable[[str], str] = lambda p: p) -> LintConfig:
    """A :class:`LintConfig` from the lint action's options (``knowledge_dirs``, ``rules_dirs``,
    ``profiles``, ``expectations``, ``expectation_files``, ``rule_params``, ``rule_overrides``,
    ``skip_rules``, ``remediation``); ``resolve`` turns a relative path into the playbook's."""
    errors: List[Dict[str, Any]] = []
    try:
        options = RemediationOptions.from_mapping(plain(args.get("remediation") or {}))
    except (TypeError, ValueError) as exc:
        errors.append({"file": "remediation", "path": "$", "message": "%s; the defaults are used" % exc})
        options = RemediationOptions()
    kb = _knowledge([resolve(p) for p in args.get("knowledge_dirs") or []], errors)
    catalog = rule_catalog.load_catalog([resolve(p) for p in args.get("rules_dirs") or []])
    errors.extend(catalog.errors)
    found, problems = expect_mod.load_profiles(_profiles(args.get("profiles", "all")))
    errors.extend(problems)
    for index, document in enumerate(args.get("expectations") or []):
        more, problems = expect_mod.expectations_from_data(plain(document), "expectations[%d]" % index)
        found.extend(more)
        errors.extend(problems)
    more, problems = expect_mod.load_expectation_files([resolve(p) for p in args.get("expectation_files") or []])
    found.extend(more)
    errors.extend(problems)
    return LintConfig(kb=kb, catalog=catalog, expectations=found, params=plain(args.get("rule_params") or {}),
                      overrides=plain(args.get("rule_overrides") or {}), skip=list(args.get("skip_rules") or []),
                      options=options, errors=errors, fingerprint=config_fingerprint(args))


def summary_lines(findings: List[Mapping[str, Any]], width: int = 200) -> List[str]:
    lines = []
    for finding in findings:
        where = (finding.get("container") or {}).get("label") or "host"
        text = "%-7s %s %s [%s] %s" % (finding["severity"].upper(), finding["rule"], finding.get("key") or "-",
                                       where, finding["message"])
        lines.append(text if len(text) <= width else text[:width - 3] + "...")
    return lines


def _refused(host: str, message: str, fail_on: str, fingerprint: Optional[str]) -> Dict[str, Any]:
    """A host whose facts cannot be linted: failed, whatever fail_on says (its state is unknown)."""
    return {"changed": False, "failed": True, "msg": "%s: %s" % (host, message), "findings": [],
            "counts": {"error": 0, "warning": 0, "info": 0}, "worst": None,
            "threshold_reached": fail_on_reached({}, fail_on, incomplete=True),
            "summary": [], "errors": [], "partial": None, "unlintable": message,
            RESULT_MARK: {"version": RESULT_VERSION, "gathered_at": None, "config": fingerprint}}


def lint_host(facts: Any, host: str, config: LintConfig, *, ansible_facts: Optional[Mapping[str, Any]] = None,
              classification: Optional[Mapping[str, Any]] = None, fail_on: str = "never",
              plain_facts: bool = False) -> Dict[str, Any]:
    """The lint result of one host. Facts that do not validate, or facts that come with
    ``nsguard_sysctl_*`` siblings (``ansible_facts``: the host's whole fact dict), give a failed
    result naming why; nothing of them is linted. ``plain_facts``: the facts are plain JSON data
    already (decoded by the caller), not Ansible's wrapped values, and need no copy."""
    if facts is None:
        return _refused(host, "no nsguard_sysctl facts: run nsguard.sysctl.sysctl_facts first", fail_on,
                        config.fingerprint)
    shadows = shadowing_facts(ansible_facts)
    if shadows:
        return _refused(host, "the target returned facts named %s: these names belong to the audit's own "
                              "variables (a fact would shadow them), so this host's result is not trusted"
                        % ", ".join(shadows[:5]), fail_on, config.fingerprint)
    if not plain_facts:
        facts = plain(facts)
    facts, problem = read_facts(facts)   # an earlier schema_version comes back in the current shape
    if problem:
        return _refused(host, "facts do not match schemas/sysctl-facts.schema.json at %s" % problem, fail_on,
                        config.fingerprint)
    errors: List[Dict[str, Any]] = list(config.errors)
    try:
        if classification is None:
            classification = config.classification(facts)
        findings = evaluator.evaluate(
            facts, classification, config.catalog, config.expectations, host=host, params=config.params,
            overrides=config.overrides, skip=config.skip, options=config.options, kb=config.kb, errors=errors)
    except Exception as exc:  # facts that pass the schema yet break the engine fail this host only
        return _refused(host, "facts cannot be linted: %s: %s" % (type(exc).__name__, str(exc)[:300]), fail_on,
                        config.fingerprint)
    counts = evaluator.count_by_severity(findings)
    partial = partial_gather(facts)
    return {
        "changed": False,
        "findings": findings,
        "counts": counts,
        "worst": evaluator.worst_severity(findings),
        # a partial gather counts like a finding at every threshold: what was not read is unknown
        "threshold_reached": fail_on_reached(counts, fail_on, incomplete=bool(partial)),
        "summary": summary_lines(findings),
        "rules": [rule.id for rule in config.catalog],
        "expectations": len(config.expectations),
        "errors": errors,
        "partial": partial,
        RESULT_MARK: {"version": RESULT_VERSION, "gathered_at": facts.get("gathered_at"),
                      "config": config.fingerprint},
    }


def failed_at_threshold(outcome: Mapping[str, Any], host: str, fail_on: str) -> Dict[str, Any]:
    """The failed task result of a host whose findings reach ``fail_on`` (``outcome``: its
    :func:`lint_host` result): the message the audit role printed, the counts and the mark,
    without the findings and their summary (already printed; a failed result is printed whole).
    The report lints such a host again (:func:`result_is_current` says so)."""
    counts = outcome["counts"]
    partial = outcome.get("partial")
    result = {key: outcome[key] for key in _FAILED_KEEPS if key in outcome}
    result.update(failed=True, findings_left_out=len(outcome.get("findings") or []), msg=(
        "%s has %d error and %d warning findings%s (nsguard_sysctl_fail_on=%s)" % (
            host, counts["error"], counts["warning"], "; the audit is partial: %s" % partial if partial else "",
            fail_on)))
    return result


def failed_on_findings(result: Any, facts: Any) -> bool:
    """Whether ``result`` is a :func:`failed_at_threshold` result of these facts: the host left
    the play on its findings, not on an error (its findings belong in the report)."""
    return (isinstance(result, Mapping) and result.get("failed") is True and result.get("threshold_reached") is True
            and "findings_left_out" in result and not result.get("unlintable")
            and _marks(result, facts)[0])


def _marks(result: Mapping[str, Any], facts: Any) -> Tuple[bool, str]:
    mark = result.get(RESULT_MARK)
    if not isinstance(mark, Mapping):
        return False, "no lint result of this run"
    if mark.get("version") != RESULT_VERSION:
        return False, "lint result of another version"
    if result.get("unlintable"):
        return True, ""
    gathered = facts.get("gathered_at") if isinstance(facts, Mapping) else None
    if mark.get("gathered_at") != gathered:
        return False, "lint result predates the facts (gathered %s, linted %s)" % (gathered, mark.get("gathered_at"))
    return True, ""


def result_is_current(result: Any, facts: Any) -> Tuple[bool, str]:
    """Whether a registered lint result was computed by :func:`lint_host` from these facts
    (same ``gathered_at``): a result older than the facts it would describe is never used."""
    if not isinstance(result, Mapping):
        return False, "no lint result of this run"
    current, why = _marks(result, facts)
    if current and "findings_left_out" in result:
        return False, "the host failed at fail_on and its result leaves the findings out"
    return current, why
