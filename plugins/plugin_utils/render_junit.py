# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""fleet.junit.xml: one test suite per host, one test case per host x rule.

A host x rule with an error or warning finding is a ``<failure>`` (its text lists the
findings); info findings pass and appear in ``<system-out>``. A host that was unreachable or
failed has an ``<error>`` in every one of its test cases, so CI dashboards show it instead of
a silent absence.
"""
from __future__ import annotations

from collections import defaultdict
from typing import IO, Any, Dict, List, Mapping
from xml.sax.saxutils import escape, quoteattr

from .render_common import clean_text, values_text
from .report import finding_where, iter_findings_by_host
from .vocabulary import SEVERITY_RANK

__all__ = ["render_junit"]


def _attr(value: Any) -> str:
    return quoteattr(clean_text(value))


def _text(value: Any) -> str:
    # keep the newlines of a multi-line body, clean each line
    return escape("\n".join(clean_text(line) for line in str(value).split("\n")))


def _line(f: Mapping[str, Any]) -> str:
    where = finding_where(f)
    vals = values_text(f.get("values"))
    return "[%s] %s %s%s: %s" % (f["severity"], where, f.get("key") or "", " (%s)" % vals if vals else "",
                                 clean_text(f.get("message")))


def render_junit(model: Mapping[str, Any], out: IO[str]) -> None:
    rules = model["rules"]
    findings_by_host = dict(iter_findings_by_host(model))
    total_tests = len(rules) * len(model["hosts"])
    suites: List[str] = []
    all_failures = all_errors = 0
    for row in model["hosts"]:
        host = row["name"]
        by_rule: Dict[str, List[Mapping[str, Any]]] = defaultdict(list)
        for f in findings_by_host.get(host, []):
            by_rule[f["rule"]].append(f)
        cases: List[str] = []
        failures = errors = 0
        for rule in rules:
            name = "%s %s" % (rule["id"], rule["name"])
            head = '    <testcase classname=%s name=%s time="0">' % (_attr("nsguard.sysctl." + host), _attr(name))
            found = by_rule.get(rule["id"], [])
            if row["status"] != "ok":
                errors += 1
                msg = "%s: %s" % (row["status"], row["message"] or "host not audited")
                cases.append(head + "\n      <error type=%s message=%s/>\n    </testcase>" % (
                    _attr(row["status"]), _attr(msg)))
                continue
            bad = [f for f in found if SEVERITY_RANK[f["severity"]] <= SEVERITY_RANK["warning"]]
            info = [f for f in found if f["severity"] == "info"]
            body = ""
            if bad:
                failures += 1
                worst = min(bad, key=lambda f: SEVERITY_RANK[f["severity"]])["severity"]
                body += "\n      <failure type=%s message=%s>%s</failure>" % (
                    _attr(worst), _attr("%d finding(s) of %s on %s" % (len(bad), rule["id"], host)),
                    _text("\n".join(_line(f) for f in bad)))
            if info:
                body += "\n      <system-out>%s</system-out>" % _text("\n".join(_line(f) for f in info))
            cases.append(head + (body + "\n    </testcase>" if body else "</testcase>"))
        all_failures += failures
        all_errors += errors
        props = '      <property name="status" value=%s/>\n      <property name="kernel" value=%s/>' % (
            _attr(row["status"]), _attr(row["kernel"] or ""))
        suites.append('  <testsuite name=%s tests="%d" failures="%d" errors="%d" skipped="0" time="0" timestamp=%s>\n'
                      '    <properties>\n%s\n    </properties>\n%s\n  </testsuite>' % (
                          _attr(host), len(rules), failures, errors, _attr(model["generated_at"].rstrip("Z")),
                          props, "\n".join(cases)))
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    out.write('<testsuites name=%s tests="%d" failures="%d" errors="%d" time="0">\n' % (
        _attr(model["title"]), total_tests, all_failures, all_errors))
    for suite in suites:
        out.write(suite)
        out.write("\n")
    out.write("</testsuites>\n")
