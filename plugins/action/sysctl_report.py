# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action nsguard.sysctl.sysctl_report: write the fleet reports on the controller.

Runs once (``run_once: true``) and reads every host's facts and findings from ``hostvars``
(``raw_get``: as stored, never templated); it opens no connection. Documentation: plugins/modules/sysctl_report.py, docs/reports.md.

How a host's status is told (Ansible gives an action no direct view of the play's results):
- in ``ansible_play_hosts``: reachable and not failed -> ``ok`` (``failed`` when it has no facts:
  the facts task was skipped or never ran, and an empty report would read as a clean host);
- in ``ansible_failed_hosts`` (set by the linear and free strategies for every task) -> ``failed``;
- in ``ansible_play_hosts_all`` but neither of the above -> ``unreachable`` (Ansible removes
  unreachable hosts from ``ansible_play_hosts`` and never lists them as failed).
With ``source: cache`` (playbook nsguard.sysctl.report) nothing was gathered in this run: a host
with facts in the cache is ``ok`` and a host without is ``unreachable`` (never audited, or
unreachable at the last audit). Every cached host is linted here. A file cache (jsonfile) is read
one host at a time, in forked workers (plugin_utils.report_inputs), not through ``hostvars``,
which would keep every host in memory; other cache plugins are read through ``hostvars``.
Entries go into ``report.FleetBuilder`` as they come: only report rows and findings stay.

Where the findings come from (docs/reliability.md, threat model): never from a target, a fact
or the fact cache. A host's findings are the registered result of this run's
``nsguard.sysctl.sysctl_lint`` (``lint_result_var``) when it was computed from the facts being
reported (plugin_utils.lint.result_is_current) and no fact of that name exists; otherwise this
action lints the host's facts itself (plugin_utils.lint.lint_host, options ``lint``). Facts
that fail the schema, or come with ``nsguard_sysctl_*`` siblings, make the host ``failed`` with
the reason; the other hosts are reported as usual.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

from ansible import constants as C
from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.nsguard.sysctl.plugins.plugin_utils import lint, renderers, report, report_inputs, vocabulary

display = Display()
# registered by the role's first task (roles/audit/tasks/main.yml): Ansible's own error text for
# a host that could not be reached
REACH_RESULT_VAR = "nsguard_sysctl_reach_result"
# a connection error is a few lines; a longer text (it can carry the target's stderr) is cut
_REACH_MESSAGE_LIMIT = 2000
# loaded in Ansible's main process, before it forks a worker per host (plugin_utils.lint.preload)
lint.preload()

_ARGSPEC = {
    "dest": {"type": "path"},
    "formats": {"type": "list", "elements": "str", "default": list(renderers.FORMATS),
                "choices": list(renderers.FORMATS)},
    "hosts": {"type": "list", "elements": "str"},
    "fail_on": {"type": "str", "choices": list(vocabulary.FAIL_ON)},
    "lint_result_var": {"type": "str", "default": lint.LINT_RESULT_VAR},
    "reach_result_var": {"type": "str", "default": REACH_RESULT_VAR},
    "lint": {"type": "dict", "default": {}},
    "facts_var": {"type": "str", "default": "nsguard_sysctl"},
    "source": {"type": "str", "default": "play", "choices": ["play", "cache"]},
    "jobs": {"type": "int"},
    "docs_base_url": {"type": "str"},
    "title": {"type": "str", "default": "nsguard.sysctl fleet report"},
}


def _collection_version() -> str:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:  # an installed collection
        with open(os.path.join(root, "MANIFEST.json"), encoding="utf-8") as handle:
            return str(json.load(handle)["collection_info"]["version"])
    except (OSError, ValueError, KeyError):
        pass
    try:  # the source tree
        import yaml
        with open(os.path.join(root, "galaxy.yml"), encoding="utf-8") as handle:
            return str(yaml.safe_load(handle).get("version", "0.0.0"))
    except Exception:  # a version is nice to have, never worth failing the report
        return "0.0.0"


def _catalog() -> Optional[Dict[str, Dict[str, Any]]]:
    """Rule metadata from the catalog (issue 4), so rules without findings still get a JUnit
    test case per host. Optional: without it the report lists the rules seen in findings."""
    try:
        from ansible_collections.nsguard.sysctl.plugins.plugin_utils import rule_catalog
        load = getattr(rule_catalog, "load_catalog")
        catalog = load()
    except Exception as exc:  # missing or broken catalog: report without it, say why
        display.vvv("sysctl_report: no rule catalog (%s); listing the rules seen in findings" % exc)
        return None
    out: Dict[str, Dict[str, Any]] = {}
    items = catalog.values() if isinstance(catalog, Mapping) else catalog
    for rule in items or []:
        get = rule.get if isinstance(rule, Mapping) else (lambda k, r=rule: getattr(r, k, None))
        rid = get("id")
        if rid and get("enabled") is not False:
            out[str(rid)] = {"name": get("name") or get("rule_name") or get("slug"), "severity": get("severity"),
                             "summary": get("summary") or get("short_description") or get("title")}
    return out or None


def _file_cache_reader() -> Optional[report_inputs.FileCacheReader]:
    """A one-host-at-a-time reader of the configured fact cache when it is a file cache, else None."""
    try:
        from ansible.plugins.cache import BaseFileCacheModule
        from ansible.plugins.loader import cache_loader
        plugin = cache_loader.get(C.CACHE_PLUGIN)
    except Exception as exc:  # noqa: BLE001 - Ansible's own hostvars path reports a broken cache
        display.vvv("sysctl_report: cannot open cache plugin %s here (%s)" % (C.CACHE_PLUGIN, exc))
        return None
    inner = getattr(plugin, "__wrapped__", None)
    if not report_inputs.FileCacheReader.usable(plugin, inner, BaseFileCacheModule):
        return None
    return report_inputs.FileCacheReader(plugin, inner)


def reach_message(registered: Any) -> Optional[str]:
    """Ansible's own message of the role's first task when that task did not reach the host, as
    plain text; None when it reached the host or never ran. Data, never templated: the text can
    quote the target (an ssh banner)."""
    if not isinstance(registered, Mapping) or registered.get("unreachable") is not True:
        return None
    text = registered.get("msg")
    if not isinstance(text, str) or not text.strip():
        return None
    text = " ".join(text.split())
    if len(text) > _REACH_MESSAGE_LIMIT:
        text = text[:_REACH_MESSAGE_LIMIT] + " [cut at %d characters]" % _REACH_MESSAGE_LIMIT
    return text


class ActionModule(ActionBase):
    _config: Optional[lint.LintConfig] = None
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(_ARGSPEC)

    def _lint_config(self, options: Mapping[str, Any]) -> lint.LintConfig:
        if self._config is None:
            unknown = sorted(set(options) - lint.LINT_OPTIONS)
            if unknown:
                raise AnsibleActionFail("lint: unknown option(s) %s (known: %s)" % (
                    ", ".join(unknown), ", ".join(sorted(lint.LINT_OPTIONS))))
            self._config = lint.load_config(options, lint.playbook_resolver(self._loader))
            for error in self._config.errors:
                display.warning("sysctl_report lint: %s %s: %s" % (error.get("file"), error.get("path"),
                                                                   error.get("message")))
        return self._config

    def _findings(self, host: str, facts: Any, facts_root: Mapping[str, Any], registered: Any,
                  options: Mapping[str, Any]) -> Dict[str, Any]:
        """This host's lint result: the registered one of this run when it describes these facts,
        else computed here. Never findings a target or the fact cache supplied."""
        current, why = lint.result_is_current(registered, facts)
        if current:
            return registered
        display.vvv("sysctl_report: %s: linting here (%s)" % (host, why))
        config = self._lint_config(options)
        mark = registered.get(lint.RESULT_MARK) if isinstance(registered, Mapping) else None
        if isinstance(mark, Mapping) and mark.get("config") and mark.get("config") != config.fingerprint:
            display.warning("sysctl_report: %s: linted with the report's lint options, which are not those of the "
                            "host's sysctl_lint task: its findings may differ from what that task found (give the "
                            "report's lint option the same values)" % host)
        return lint.lint_host(facts, host, config, ansible_facts=facts_root)

    @staticmethod
    def _left_the_play(facts: Any, registered: Any, reach_registered: Any,
                       reached: Optional[str]) -> Tuple[str, Optional[str]]:
        """The status of a host Ansible removed from the play without listing it as failed:
        unreachable, or (the role's report runs in an ``always`` section) failed inside the
        audit's block, where a host is not in ``ansible_failed_hosts`` yet. A host that failed on
        its findings (sysctl_lint's ``fail``) is ``ok``: the report lists them."""
        if reached:
            return "unreachable", reached
        if lint.failed_on_findings(registered, facts):
            return "ok", None
        if isinstance(reach_registered, Mapping) or isinstance(registered, Mapping):
            return "failed", "failed during the audit; see its task output"
        return "unreachable", "unreachable during the play; see its task output"

    def _play_entries(self, task_vars: Mapping[str, Any], hosts: List[str], facts_var: str, lint_result_var: str,
                      reach_result_var: str, options: Mapping[str, Any]) -> Iterator[Tuple[str, Dict[str, Any]]]:
        """``source: play``: each host's status in this play, its facts and lint from ``hostvars``."""
        hostvars = task_vars.get("hostvars", {})
        play_hosts = set(task_vars.get("ansible_play_hosts") or [])
        failed_hosts = set(task_vars.get("ansible_failed_hosts") or [])
        for host in hosts:
            # an unknown name gives an Undefined marker (2.19), not a KeyError: ask first
            if host not in hostvars:
                yield host, report_inputs.report_entry("failed", "not in the inventory", None, None)
                continue
            # raw_get: the host's variables as stored, not run through the templating engine
            # (hostvars[host] templates every value read: 90% of this step's time at 60 hosts)
            hv = hostvars.raw_get(host)
            facts_root = hv.get("ansible_facts") or {}
            facts_root = facts_root if isinstance(facts_root, Mapping) else {}
            facts = facts_root.get(facts_var)
            # a registered variable outranks a fact of the same name, but where the lint task never
            # ran on this host a forged fact would stand in for it
            registered = None if lint_result_var in facts_root else hv.get(lint_result_var)
            reach_registered = None if reach_result_var in facts_root else hv.get(reach_result_var)
            status, message = "ok", None
            if host in failed_hosts:
                status, message = "failed", "failed earlier in the play; see its task output"
            elif host not in play_hosts:
                status, message = self._left_the_play(facts, registered, reach_registered,
                                                      reach_message(reach_registered))
            elif facts is None:
                status, message = "failed", "no ansible_facts.%s: the facts task did not run on this host" % facts_var
            outcome = None
            if facts is not None and status != "unreachable":
                outcome = self._findings(host, facts, facts_root, registered, options)
            yield host, report_inputs.report_entry(status, message, facts, outcome)

    def _cache_entries(self, task_vars: Mapping[str, Any], hosts: List[str], facts_var: str,
                       options: Mapping[str, Any], jobs: Optional[int]) -> Iterator[Tuple[str, Dict[str, Any]]]:
        """``source: cache``: every host linted here from its cached facts. A file cache
        (jsonfile) is read one host at a time, in ``jobs`` workers, each host forgotten once
        linted; any other cache plugin through ``hostvars`` (which keeps every host in memory)."""
        hostvars = task_vars.get("hostvars", {})
        config = self._lint_config(options)
        reader = _file_cache_reader()
        if reader is None:
            display.v("sysctl_report: cache plugin %s is not a file cache: reading hostvars (every host stays in "
                      "memory; ansible.builtin.jsonfile is read one host at a time)" % C.CACHE_PLUGIN)

        def entry(host: str) -> Dict[str, Any]:
            if host not in hostvars:  # the inventory, not the facts: asks no cache
                return report_inputs.report_entry("failed", "not in the inventory", None, None)
            if reader is None:
                cached = hostvars.raw_get(host).get("ansible_facts")
                return report_inputs.cached_entry(host, cached if isinstance(cached, Mapping) else None, config,
                                                  facts_var)
            cached, problem, plain = reader(host)
            if problem:
                return report_inputs.report_entry("failed", problem, None, None)
            return report_inputs.cached_entry(host, cached, config, facts_var, plain=plain)

        if reader is None:
            return report_inputs.stream_entries(hosts, entry, 1)
        if jobs:  # asked for: a pool however few the hosts
            return report_inputs.stream_entries(hosts, entry, jobs, min_hosts=1)
        return report_inputs.stream_entries(hosts, entry, report_inputs.default_jobs())

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        validation, args = self.validate_argument_spec(argument_spec=_ARGSPEC)
        dest = args["dest"] or task_vars.get("nsguard_sysctl_report_dir") or "reports"
        dest = os.path.abspath(os.path.expanduser(to_text(dest)))
        fail_on = args["fail_on"] or task_vars.get("nsguard_sysctl_fail_on") or "never"
        if fail_on not in vocabulary.FAIL_ON:
            raise AnsibleActionFail("fail_on (or nsguard_sysctl_fail_on) must be one of %s, not %r"
                                    % (", ".join(vocabulary.FAIL_ON), fail_on))
        hosts = args["hosts"] or list(task_vars.get("ansible_play_hosts_all") or [])
        docs_base_url = (args["docs_base_url"] or task_vars.get("nsguard_sysctl_docs_base_url")
                         or report.DEFAULT_DOCS_BASE_URL)

        self._config = None
        # hosts in name order, once each: the order of every report (report.build_fleet's)
        hosts = sorted(set(to_text(h) for h in hosts), key=str)
        if args["source"] == "cache":
            entries = self._cache_entries(task_vars, hosts, args["facts_var"], args["lint"], args["jobs"])
        else:
            entries = self._play_entries(task_vars, hosts, args["facts_var"], args["lint_result_var"],
                                         args["reach_result_var"], args["lint"])
        builder = report.FleetBuilder(rules=_catalog(), docs_base_url=docs_base_url, title=args["title"],
                                      version=_collection_version(), source=args["source"])
        for host, entry in entries:  # each entry is dropped once added: only rows and findings stay
            builder.add_host(host, entry)
        model = builder.finish()
        written, errors = renderers.write_reports(model, dest, args["formats"])

        summary = model["summary"]
        for problem in model["problems"]:
            display.warning("sysctl_report: %s: %s: %s" % (problem["host"], problem["where"], problem["message"]))
        line = report.summary_line(model)
        display.display(line)  # the final line of a long run, whatever the verbosity

        result.update({
            "changed": bool(written),
            "dest": dest,
            "files": written,
            "summary_line": line,
            "hosts": summary["hosts"],
            "counts": summary["findings"],
            "per_host": {row["name"]: dict(row["findings"], status=row["status"]) for row in model["hosts"]},
            "per_rule": {row["id"]: row["findings"]["total"] for row in model["rules"]},
            "problems": model["problems"],
            "fail_on": fail_on,
        })
        if errors:
            result["failed"] = True
            result["render_errors"] = errors
            result["msg"] = "could not write %s; the other reports were written" % "; ".join(
                "%s (%s)" % (fmt, err) for fmt, err in sorted(errors.items()))
        elif report.should_fail(model, fail_on):
            result["failed"] = True
            result["msg"] = "fail_on=%s: %s" % (fail_on, line)
        else:
            result["msg"] = line
        return result
