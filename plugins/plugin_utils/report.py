# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleet aggregation: ``{host: {facts, findings, status}}`` -> one fleet model.

The model is plain JSON data; it *is* the content of ``fleet.json`` (see
``schemas/fleet-report.schema.json``) and every other renderer (Markdown, HTML, SARIF, JUnit,
remediation playbook) reads only the model. ``build_fleet`` is a pure function: it never
mutates its input and shares (does not copy) the finding mappings, so a fleet of 2,000 hosts
costs little more memory than the facts Ansible already holds.

Input per host (``docs/reports.md``)::

    {"status": "ok" | "unreachable" | "failed",   # default ok
     "message": "why not ok" | None,
     "facts": ansible_facts.nsguard_sysctl | None, # docs/facts.md
     "findings": [finding, ...] | None}            # docs/findings.md

Bad input (a finding that is not a mapping, an unknown severity, ...) never stops the report:
it is recorded in ``model["problems"]`` with the host and the key, and the rest is reported.

Plain Python (no Ansible import): the action plugin, ``bench/`` and tests all call it.
"""
from __future__ import annotations

import datetime
import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from .vocabulary import (COLLECTION_ROOT, FAIL_ON, SEVERITIES, SEVERITY_RANK, container_label, fail_on_reached,
                         finding_sort_key, set_label)

__all__ = [
    "REPORT_VERSION", "STATUSES", "DEFAULT_DOCS_BASE_URL", "DOCS_BASE_ENV", "docs_base_url",
    "build_fleet", "FleetBuilder", "trim_facts", "should_fail", "summary_line", "rule_help_uri", "finding_where",
]

REPORT_VERSION = 1
STATUSES = ("ok", "unreachable", "failed")
# Base URL of the collection's sources; rule docs live at <base>docs/rules/<id>.md.
# The one docs base of the collection: links are <base>docs/rules/<id>.md in fleet.sarif
# (helpUri), fleet.html, fleet.md and the ansible-lint rules' url (and so their SARIF helpUri).
DOCS_BASE_ENV = "NSGUARD_SYSCTL_DOCS_BASE_URL"


def docs_base_url(root: Optional[Path] = None) -> str:
    """``$NSGUARD_SYSCTL_DOCS_BASE_URL``, else the ``file://`` URL of the collection root, whose
    ``docs/`` ship with the collection (and with the pip package's snapshot), so the default
    always resolves where the code runs. Reports can still be given another base per run (action
    option ``docs_base_url`` / ``nsguard_sysctl_docs_base_url``)."""
    base = os.environ.get(DOCS_BASE_ENV) or Path(root or COLLECTION_ROOT).as_uri()
    return base if base.endswith("/") else base + "/"


DEFAULT_DOCS_BASE_URL = docs_base_url()
GENERATOR = "nsguard.sysctl"


def _utcnow() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def rule_help_uri(rule_id: str, docs_base_url: str = DEFAULT_DOCS_BASE_URL) -> str:
    base = docs_base_url if docs_base_url.endswith("/") else docs_base_url + "/"
    return "%sdocs/rules/%s.md" % (base, rule_id)


def _zero_counts() -> Dict[str, int]:
    return {"total": 0, "error": 0, "warning": 0, "info": 0}


def _str_or_none(value: Any) -> Optional[str]:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def finding_where(finding: Mapping[str, Any]) -> str:
    """Where a finding is: its container's label, or "(host)" for a host-level finding."""
    container = finding.get("container") if isinstance(finding.get("container"), Mapping) else None
    if container or finding.get("set_id"):
        return container_label(container, finding.get("set_id"))
    return "(host)"


def _container_row(host: str, nset: Mapping[str, Any]) -> Dict[str, Any]:
    identity = nset.get("identity") if isinstance(nset.get("identity"), Mapping) else {}
    init = nset.get("init") if isinstance(nset.get("init"), Mapping) else {}
    labels = identity.get("labels") if isinstance(identity.get("labels"), Mapping) else {}
    conntrack = nset.get("conntrack_count")
    set_id = _str_or_none(nset.get("id"))
    return {
        "host": host,
        "set_id": set_id,
        # the same name the lint messages use for this set (comm[pid] for an unnamed one)
        "label": set_label(nset),
        "runtime": _str_or_none(identity.get("runtime")),
        "id": _str_or_none(identity.get("id")),
        "name": _str_or_none(identity.get("name")),
        "image": _str_or_none(identity.get("image")),
        "pod_name": _str_or_none(identity.get("pod_name")),
        "pod_namespace": _str_or_none(identity.get("pod_namespace")),
        "netns_name": _str_or_none(identity.get("netns_name")),
        "labels": {str(k): _str_or_none(v) for k, v in labels.items()},
        "pid": init.get("pid") if isinstance(init.get("pid"), int) else None,
        "comm": _str_or_none(init.get("comm")),
        "cmdline": _str_or_none(init.get("cmdline")),
        "differs_from_host": [str(x) for x in nset.get("differs_from_host") or []],
        "conntrack_count": conntrack if isinstance(conntrack, int) else None,
        "errors": len(nset.get("errors") or []),
        "findings": _zero_counts(),
    }


def _host_entry(name: str, status: str, message: Optional[str], facts: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    host_facts = facts.get("host") if facts and isinstance(facts.get("host"), Mapping) else {}
    kernel = host_facts.get("kernel") if isinstance(host_facts.get("kernel"), Mapping) else {}
    errors = facts.get("errors") if facts else None
    return {
        "name": name,
        "status": status,
        "message": message,
        "partial": None,
        "gathered_at": _str_or_none(facts.get("gathered_at")) if facts else None,
        "hostname": _str_or_none(host_facts.get("hostname")),
        "kernel": _str_or_none(kernel.get("release")),
        "containers": 0,
        "findings": _zero_counts(),
        "rules": [],
        "errors": [_error_text(e) for e in errors] if isinstance(errors, list) else [],
        "conntrack": None,
    }


def _error_text(error: Any) -> str:
    if isinstance(error, Mapping):
        parts = ["%s=%s" % (k, error[k]) for k in ("stage", "set", "key") if error.get(k)]
        return ("[%s] " % " ".join(parts) if parts else "") + str(error.get("message", ""))
    return str(error)


def _conntrack(host: str, facts: Mapping[str, Any], labels: Mapping[str, str]) -> Tuple[Optional[Dict[str, Any]], List[Dict[str, Any]]]:
    ct = facts.get("conntrack")
    if not isinstance(ct, Mapping) or not ct.get("loaded"):
        return None, []
    ct_max = ct.get("max") if isinstance(ct.get("max"), int) else None
    rows: List[Dict[str, Any]] = []
    total = 0
    for entry in ct.get("per_netns") or []:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("count"), int):
            continue
        sets = [str(s) for s in entry.get("sets") or []]
        if entry.get("host"):
            label = "(host)"
        else:
            label = ", ".join(labels.get(s, s) for s in sets) or "netns %s" % entry.get("net")
        count = entry["count"]
        total += count
        rows.append({
            "host": host, "net": entry.get("net"), "host_netns": bool(entry.get("host")),
            "label": label, "count": count, "max": ct_max,
            # nf_conntrack_max is checked against each netns's own count (kernel-namespacing §1)
            "use": round(count / ct_max, 6) if ct_max else None,
        })
    summary = {
        "max": ct_max,
        "buckets": ct.get("buckets") if isinstance(ct.get("buckets"), int) else None,
        "total": total,                       # entries of all netns share one table and memory
        "netns": len(rows),
        "peak": max((r["count"] for r in rows), default=0),
        "peak_use": max((r["use"] or 0 for r in rows), default=0) if ct_max else None,
    }
    return summary, rows


_SET_FIELDS = ("id", "identity", "init", "differs_from_host", "conntrack_count", "errors")


def trim_facts(facts: Mapping[str, Any]) -> Dict[str, Any]:
    """The part of ``ansible_facts.nsguard_sysctl`` the reports read.

    The per-key tables (``host.keys``, ``probe.keys``, each set's ``view``) are most of the facts
    and no report shows them; a caller that must copy facts (the action copies Ansible's
    wrapped values into plain ones) copies only this.
    """
    host = facts.get("host") if isinstance(facts.get("host"), Mapping) else {}
    sets = facts.get("namespace_sets")
    return {
        "gathered_at": facts.get("gathered_at"),
        "host": {"kernel": host.get("kernel"), "hostname": host.get("hostname")},
        "namespace_sets": [{k: s.get(k) for k in _SET_FIELDS} if isinstance(s, Mapping) else s for s in sets]
        if isinstance(sets, list) else sets,
        "conntrack": facts.get("conntrack"),
        "errors": facts.get("errors"),
    }


def _host_containers(row: Dict[str, Any], facts: Optional[Mapping[str, Any]], by_set: Dict[Optional[str], Dict[str, Any]],
                     problems: List[Dict[str, Any]]) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """The container rows and conntrack rows of one host (``by_set`` receives the container rows
    by set id); sets ``row["conntrack"]``."""
    out: List[Dict[str, Any]] = []
    if not facts:
        return out, []
    sets = facts.get("namespace_sets") or []
    for index, nset in enumerate(sets if isinstance(sets, list) else []):
        if not isinstance(nset, Mapping):
            problems.append({"host": row["name"], "where": "namespace_sets[%d]" % index, "message": "not a mapping"})
            continue
        crow = _container_row(row["name"], nset)
        by_set[crow["set_id"]] = crow
        out.append(crow)
    labels = {k: v["label"] for k, v in by_set.items() if k}
    row["conntrack"], rows = _conntrack(row["name"], facts, labels)
    return out, rows


class FleetBuilder:
    """:func:`build_fleet` one host at a time, in four phases: the catalog's rule metadata
    (``__init__``), each host's row, containers and conntrack (:meth:`add_host`, which also
    normalises and counts its findings), the rule rows, then the fleet's order and summary
    (:meth:`finish`). A caller that streams hosts (the report action reading a fact cache)
    keeps only the rows and findings of the hosts added, never their facts. Hosts are reported
    in the order added; :func:`build_fleet` adds them sorted by name."""

    def __init__(self, *, rules: Optional[Mapping[str, Mapping[str, Any]]] = None,
                 docs_base_url: str = DEFAULT_DOCS_BASE_URL, generated_at: Optional[str] = None,
                 title: str = "nsguard.sysctl fleet report", version: str = "0.0.0", source: str = "play") -> None:
        self.problems: List[Dict[str, Any]] = []
        self.host_rows: List[Dict[str, Any]] = []
        self.containers: List[Dict[str, Any]] = []
        self.conntrack_rows: List[Dict[str, Any]] = []
        self.findings: List[Mapping[str, Any]] = []
        self.rule_stats: Dict[str, Dict[str, Any]] = {}
        self.rule_meta: Dict[str, Dict[str, Any]] = {}
        for rid, meta in (rules or {}).items():
            meta = meta if isinstance(meta, Mapping) else {}
            self.rule_meta[str(rid)] = {"name": _str_or_none(meta.get("name")), "severity": meta.get("severity"),
                                        "summary": _str_or_none(meta.get("summary") or meta.get("description"))}
        self.header = {"report_version": REPORT_VERSION, "kind": "nsguard.sysctl/fleet", "title": title,
                       "generated_at": generated_at or _utcnow(), "generator": {"name": GENERATOR, "version": version},
                       "source": source, "docs_base_url": docs_base_url}

    def add_host(self, name: Any, entry: Any) -> None:
        """One host's input entry (module docstring): its row, containers, conntrack, findings."""
        row, by_set, entry = self._host_row(str(name), entry)
        self.host_rows.append(row)
        host_rules = set()
        for index, finding in enumerate(self._finding_list(row, entry)):
            finding = self._checked_finding(row, index, finding)
            if finding is not None:
                self._count_finding(row, finding, by_set)
                host_rules.add(finding["rule"])
        row["rules"] = sorted(host_rules)
        row["containers"] = len(by_set)

    def _host_row(self, name: str, raw_entry: Any) -> Tuple[Dict[str, Any], Dict[Optional[str], Dict[str, Any]], Mapping[str, Any]]:
        problems = self.problems
        entry = raw_entry if isinstance(raw_entry, Mapping) else {}
        if not isinstance(raw_entry, Mapping):
            problems.append({"host": name, "where": "host", "message": "host entry is not a mapping"})
        status = entry.get("status") or "ok"
        message = _str_or_none(entry.get("message"))
        if status not in STATUSES:
            problems.append({"host": name, "where": "status",
                             "message": "unknown status %r (expected ok, unreachable or failed); reported as failed" % (status,)})
            message = message or "unknown status %r" % (status,)
            status = "failed"
        facts = entry.get("facts")
        if facts is not None and not isinstance(facts, Mapping):
            problems.append({"host": name, "where": "facts", "message": "facts are a %s, not a mapping" % type(facts).__name__})
            facts = None
        by_set: Dict[Optional[str], Dict[str, Any]] = {}
        try:
            row = _host_entry(name, status, message, facts)
            host_containers, rows = _host_containers(row, facts, by_set, problems)
        except Exception as exc:  # one host's malformed facts must never cost the others their report
            problems.append({"host": name, "where": "facts",
                             "message": "cannot be reported (%s: %s); host reported as failed" % (type(exc).__name__, exc)})
            row = _host_entry(name, "failed", "facts cannot be reported: %s: %s" % (type(exc).__name__, exc), None)
            host_containers, rows, by_set = [], [], {}
            entry = {}
        row["partial"] = _str_or_none(entry.get("partial")) if row["status"] == "ok" else None
        if row["partial"]:
            problems.append({"host": name, "where": "gather", "message": "partial audit: %s" % row["partial"]})
        self.containers.extend(host_containers)
        self.conntrack_rows.extend(rows)
        return row, by_set, entry

    def _finding_list(self, row: Mapping[str, Any], entry: Mapping[str, Any]) -> List[Any]:
        raw = entry.get("findings")
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.problems.append({"host": row["name"], "where": "findings",
                                  "message": "findings are a %s, not a list" % type(raw).__name__})
            return []
        return raw

    def _checked_finding(self, row: Mapping[str, Any], index: int, finding: Any) -> Optional[Mapping[str, Any]]:
        """The finding as reported (a copy only where it needs fixing), or None (recorded)."""
        where = "findings[%d]" % index
        if not isinstance(finding, Mapping):
            self.problems.append({"host": row["name"], "where": where, "message": "finding is not a mapping"})
            return None
        rid = finding.get("rule")
        if not isinstance(rid, str) or not rid:
            self.problems.append({"host": row["name"], "where": where + ".rule", "message": "finding has no rule id"})
            return None
        fixes: Dict[str, Any] = {}
        if finding.get("severity") not in SEVERITY_RANK:
            self.problems.append({"host": row["name"], "where": where + ".severity",
                                  "message": "unknown severity %r for %s; reported as error" % (finding.get("severity"), rid)})
            fixes["severity"] = "error"
        if finding.get("host") != row["name"]:
            if finding.get("host") not in (None, ""):
                self.problems.append({"host": row["name"], "where": where + ".host",
                                      "message": "finding names host %r; reported under %r" % (finding.get("host"), row["name"])})
            fixes["host"] = row["name"]
        # the rest is shared with the caller
        return dict(finding, **fixes) if fixes else finding

    def _count_finding(self, row: Dict[str, Any], finding: Mapping[str, Any],
                       by_set: Dict[Optional[str], Dict[str, Any]]) -> None:
        rid, severity = finding["rule"], finding["severity"]
        self.findings.append(finding)
        row["findings"]["total"] += 1
        row["findings"][severity] += 1
        set_id = finding.get("set_id")
        crow = by_set.get(set_id) if set_id else None
        if set_id and crow is None:
            # a finding about a set the facts do not list (facts trimmed, or gathered apart)
            container = finding.get("container") if isinstance(finding.get("container"), Mapping) else {}
            crow = _container_row(row["name"], {"id": set_id, "identity": container})
            crow["label"] = container_label(container, set_id)
            by_set[set_id] = crow
            self.containers.append(crow)
        if crow is not None:
            crow["findings"]["total"] += 1
            crow["findings"][severity] += 1
        stats = self.rule_stats.get(rid)
        if stats is None:
            stats = self.rule_stats[rid] = {"counts": _zero_counts(), "hosts": set(), "containers": set(),
                                            "keys": Counter(), "name": None, "worst": severity}
        stats["counts"]["total"] += 1
        stats["counts"][severity] += 1
        stats["hosts"].add(row["name"])
        if set_id:
            stats["containers"].add((row["name"], set_id))
        if finding.get("key"):
            stats["keys"][str(finding["key"])] += 1
        if not stats["name"] and finding.get("rule_name"):
            stats["name"] = str(finding["rule_name"])
        if SEVERITY_RANK[severity] < SEVERITY_RANK[stats["worst"]]:
            stats["worst"] = severity

    def _rule_rows(self) -> List[Dict[str, Any]]:
        rule_rows = []
        for rid in sorted(set(self.rule_meta) | set(self.rule_stats)):
            meta = self.rule_meta.get(rid, {})
            stats = self.rule_stats.get(rid)
            severity = meta.get("severity") if meta.get("severity") in SEVERITY_RANK else (stats["worst"] if stats else "warning")
            rule_rows.append({
                "id": rid,
                "name": meta.get("name") or (stats["name"] if stats else None) or rid,
                "severity": severity,
                "summary": meta.get("summary"),
                "help_uri": rule_help_uri(rid, self.header["docs_base_url"]),
                "findings": stats["counts"] if stats else _zero_counts(),
                "hosts": len(stats["hosts"]) if stats else 0,
                "containers": len(stats["containers"]) if stats else 0,
                "keys": [k for k, dummy in stats["keys"].most_common(20)] if stats else [],
            })
        return rule_rows

    def finish(self) -> Dict[str, Any]:
        """The fleet model. The builder's lists become the model's: add no host after this."""
        rule_rows = self._rule_rows()
        host_rows, findings = self.host_rows, self.findings
        # one stable order for every renderer: host, worst first, rule, container, key
        findings.sort(key=finding_sort_key)
        totals = _zero_counts()
        for row in host_rows:
            for k in totals:
                totals[k] += row["findings"][k]
        status_counts = Counter(row["status"] for row in host_rows)
        self.conntrack_rows.sort(key=lambda r: (-(r["count"]), r["host"], str(r["net"])))
        return dict(self.header, **{
            "summary": {
                "hosts": {"total": len(host_rows), **{s: status_counts.get(s, 0) for s in STATUSES},
                          "partial": sum(1 for row in host_rows if row["partial"])},
                "containers": len(self.containers),
                "findings": totals,
                "rules": sum(1 for r in rule_rows if r["findings"]["total"]),
                "worst": next((s for s in SEVERITIES if totals[s]), None),
                "problems": len(self.problems),
            },
            "rules": rule_rows,
            "hosts": host_rows,
            "containers": self.containers,
            "conntrack": self.conntrack_rows,
            "findings": findings,
            "problems": self.problems,
        })


def build_fleet(hosts: Mapping[str, Mapping[str, Any]], *, rules: Optional[Mapping[str, Mapping[str, Any]]] = None,
                docs_base_url: str = DEFAULT_DOCS_BASE_URL, generated_at: Optional[str] = None,
                title: str = "nsguard.sysctl fleet report", version: str = "0.0.0",
                source: str = "play") -> Dict[str, Any]:
    """Aggregate per-host facts and findings into the fleet model (the content of fleet.json).

    ``rules`` is optional catalog metadata ``{id: {name, severity, summary}}``; every rule in it
    is listed (JUnit makes one test case per host and rule), plus any rule seen in findings.
    Hosts in name order; :class:`FleetBuilder` does the work, one host at a time.
    """
    builder = FleetBuilder(rules=rules, docs_base_url=docs_base_url, generated_at=generated_at, title=title,
                           version=version, source=source)
    for name in sorted(hosts, key=str):
        builder.add_host(name, hosts[name])
    return builder.finish()


def should_fail(model: Mapping[str, Any], fail_on: str) -> bool:
    """The pipeline verdict. ``never``: never. ``warning``/``error``: a finding at or above that
    severity, or a host that was not audited (unreachable/failed: its state is unknown) or only
    in part (a partial gather: what it did not read is unknown too)."""
    if fail_on not in FAIL_ON or fail_on == "never":
        return fail_on_reached({}, fail_on)  # raises for an unknown value, False for never
    hosts = model["summary"]["hosts"]
    return fail_on_reached(model["summary"]["findings"], fail_on,
                           incomplete=bool(hosts["unreachable"] or hosts["failed"] or hosts.get("partial")))


def summary_line(model: Mapping[str, Any]) -> str:
    s = model["summary"]
    h, f = s["hosts"], s["findings"]
    return ("nsguard.sysctl: %d hosts (%d ok%s, %d unreachable, %d failed), %d containers, "
            "%d findings: %d error, %d warning, %d info" % (
                h["total"], h["ok"], " of which %d partial" % h["partial"] if h.get("partial") else "",
                h["unreachable"], h["failed"], s["containers"],
                f["total"], f["error"], f["warning"], f["info"]))


def iter_findings_by_host(model: Mapping[str, Any]) -> Iterable[Tuple[str, List[Mapping[str, Any]]]]:
    """(host, findings) in host order; findings are sorted by host first in the model."""
    groups: Dict[str, List[Mapping[str, Any]]] = defaultdict(list)
    for finding in model["findings"]:
        groups[finding["host"]].append(finding)
    for row in model["hosts"]:
        yield row["name"], groups.get(row["name"], [])
