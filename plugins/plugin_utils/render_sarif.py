# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""fleet.sarif: the fleet's findings as SARIF 2.1.0 (OASIS errata01 schema), in the subset
GitHub code scanning ingests.

One run; ``tool.driver.rules`` holds every rule of the report: ``shortDescription`` (the
catalog's title), ``fullDescription`` (its rationale), ``help.text``/``help.markdown`` (the rule's
page, ``docs/rules/<id>.md``, generated from the catalog by ``rules.rule_markdown``) and
``helpUri`` at ``<docs_base_url>docs/rules/<id>.md``. A finding is about a host, not a source
file, so each result points at the row of **fleet.md** that lists it (the findings of its host:
container, key, values, message, where the fix goes): ``physicalLocation`` with the path of
fleet.md relative to the controller's working directory (the repository checkout when a
pipeline runs ``ansible-playbook`` there) and the row's ``startLine`` (``render_md.finding_lines``),
plus the logical location ``host/container/key``. ``partialFingerprints`` are built from host,
rule, container identity and key, never from line numbers or namespace inodes, so an alert stays
the same alert across runs. Code scanning refuses a run of more than 25,000 results: the worst
``MAX_RESULTS`` are kept and a notification says how many were left out (fleet.json has all).
Hosts that were not audited and input problems are ``invocations[0].toolExecutionNotifications``,
and ``executionSuccessful`` is false when a host was unreachable or failed.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import IO, Any, Dict, List, Mapping, Optional
from urllib.parse import quote

from .render_common import clean_text, values_text
from .report import finding_where
from .vocabulary import SEVERITY_RANK

__all__ = ["render_sarif", "SARIF_SCHEMA_URI", "LEVELS", "MAX_RESULTS", "SRCROOT"]

SARIF_SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
LEVELS = {"error": "error", "warning": "warning", "info": "note"}
# GitHub code scanning's hard limit on results per run (docs: "SARIF results exceed limit").
MAX_RESULTS = 25000
SRCROOT = "%SRCROOT%"
_MD_NAME = "fleet.md"


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _catalog() -> Dict[str, Any]:
    """Catalog rules by id, or {} when the catalog cannot be read (then the model's text is used)."""
    try:
        from .rule_catalog import load_catalog
        return dict(load_catalog().rules)
    except Exception:  # a broken catalog must not cost the SARIF file
        return {}


def _help(rule: Mapping[str, Any], entry: Any) -> Dict[str, str]:
    if entry is not None:
        try:
            from .rule_catalog import rule_markdown
            text = rule_markdown(entry)
            if text.startswith("<!--"):  # the "generated from" note is for the repository, not the alert
                text = text.split("\n", 1)[1]
            return {"text": text, "markdown": text}
        except Exception:
            pass
    text = "%s: %s. Details: %s" % (rule["id"], clean_text(rule.get("summary") or rule["name"]), rule["help_uri"])
    return {"text": text, "markdown": text}


def _rule(rule: Mapping[str, Any], entry: Any) -> Dict[str, Any]:
    short = clean_text((entry.title if entry is not None else None) or rule.get("summary") or rule["name"])
    full = clean_text(" ".join(entry.rationale.split()) if entry is not None else "") or short
    tags = ["nsguard", "sysctl", rule["name"]] + list(entry.tags if entry is not None else [])
    return {
        "id": rule["id"],
        "name": rule["name"],
        "shortDescription": {"text": short},
        "fullDescription": {"text": full},
        "helpUri": rule["help_uri"],
        "help": _help(rule, entry),
        "defaultConfiguration": {"level": LEVELS[rule["severity"]]},
        "properties": {"tags": list(dict.fromkeys(tags))[:20]},  # code scanning: at most 20 tags
    }


def _fingerprint(finding: Mapping[str, Any]) -> str:
    # Stable across runs: container *identity* rather than namespace inode numbers, which
    # change whenever a container restarts.
    container = finding.get("container") if isinstance(finding.get("container"), Mapping) else {}
    who = container.get("name") or container.get("id") or ("" if not finding.get("set_id") else "set")
    raw = "\x1f".join(str(x) for x in (finding["host"], finding["rule"], container.get("runtime") or "", who,
                                       finding.get("key") or ""))
    return hashlib.sha256(raw.encode("utf-8", "backslashreplace")).hexdigest()


def _md_uri(out: Any) -> Dict[str, Any]:
    """Where fleet.md is: next to fleet.sarif (``out.target_path`` from atomic_open, or a plain
    file's name), relative to the working directory when below it, else to the report directory."""
    name = getattr(out, "target_path", None) or getattr(out, "name", None)
    if not isinstance(name, str) or not name:
        return {"uri": _MD_NAME}
    directory = os.path.dirname(os.path.abspath(name))
    rel = os.path.relpath(directory, os.getcwd())
    if rel == "." or not rel.startswith(".."):
        uri = _MD_NAME if rel == "." else "/".join([quote(part) for part in rel.split(os.sep)] + [_MD_NAME])
        return {"uri": uri, "uriBaseId": SRCROOT}
    return {"uri": _MD_NAME}


def _result(finding: Mapping[str, Any], rule_index: int, artifact: Mapping[str, Any], line: int) -> Dict[str, Any]:
    container = finding.get("container") if isinstance(finding.get("container"), Mapping) else None
    where = finding_where(finding)
    key = finding.get("key")
    fqn = "/".join(clean_text(x) for x in (finding["host"], where, key) if x)
    message = clean_text(finding.get("message")) or "%s %s" % (finding["rule"], clean_text(key))
    vals = values_text(finding.get("values"))
    remediation = finding.get("remediation") if isinstance(finding.get("remediation"), Mapping) else {}
    return {
        "ruleId": finding["rule"],
        "ruleIndex": rule_index,
        "level": LEVELS[finding["severity"]],
        "message": {"text": message + (" (%s)" % vals if vals else "")},
        "locations": [{
            "physicalLocation": {"artifactLocation": dict(artifact), "region": {"startLine": line}},
            "logicalLocations": [{"name": clean_text(key) if key else where, "fullyQualifiedName": fqn,
                                  "kind": "member" if key else "namespace"}]}],
        "partialFingerprints": {"nsguardFinding/v1": _fingerprint(finding)},
        "properties": {
            "host": finding["host"],
            "set_id": finding.get("set_id"),
            "container": where,
            "image": container.get("image") if container else None,
            "key": key,
            "class": finding.get("class"),
            "namespace": finding.get("namespace"),
            "evidence": finding.get("evidence"),
            "remediation": remediation.get("where"),
        },
    }


def _notifications(model: Mapping[str, Any]) -> List[Dict[str, Any]]:
    notes = []
    for row in model["hosts"]:
        if row["status"] == "ok":
            continue
        notes.append({
            "level": "error",
            "message": {"text": "%s: host %s, not audited%s" % (
                row["status"], clean_text(row["name"]), ": " + clean_text(row["message"]) if row["message"] else "")},
            "descriptor": {"id": "host-" + row["status"]},
            "locations": [{"logicalLocations": [{"name": clean_text(row["name"]), "kind": "module"}]}],
            "properties": {"host": row["name"], "status": row["status"], "gathered_at": row["gathered_at"]},
        })
    for problem in model["problems"]:
        notes.append({
            "level": "warning",
            "message": {"text": "%s: %s: %s" % (clean_text(problem["host"]), clean_text(problem["where"]),
                                                clean_text(problem["message"]))},
            "descriptor": {"id": "input-problem"},
        })
    return notes


def _kept(findings: List[Mapping[str, Any]], limit: int) -> Optional[set]:
    """Indexes of the ``limit`` worst findings (severity, then report order); None: all."""
    if len(findings) <= limit:
        return None
    order = sorted(range(len(findings)), key=lambda i: (SEVERITY_RANK[findings[i]["severity"]], i))
    return set(order[:limit])


def render_sarif(model: Mapping[str, Any], out: IO[str]) -> None:
    from .render_md import finding_lines

    rules = model["rules"]
    index = {r["id"]: i for i, r in enumerate(rules)}
    catalog = _catalog()
    driver = {
        "name": model["generator"]["name"],
        "version": model["generator"]["version"],
        "informationUri": model["docs_base_url"],
        "rules": [_rule(r, catalog.get(r["id"])) for r in rules],
    }
    findings = model["findings"]
    kept = _kept(findings, MAX_RESULTS)
    notifications = _notifications(model)
    if kept is not None:
        notifications.append({
            "level": "warning",
            "message": {"text": "%d of %d findings are left out: code scanning takes at most %d results per run; "
                                "the worst are kept, fleet.json and fleet.md list all" % (
                                    len(findings) - len(kept), len(findings), MAX_RESULTS)},
            "descriptor": {"id": "results-truncated"},
        })
    hosts = model["summary"]["hosts"]
    invocation = {
        "executionSuccessful": not (hosts["unreachable"] or hosts["failed"]),
        "endTimeUtc": model["generated_at"],
        "toolExecutionNotifications": notifications,
        "properties": {"hosts": hosts},
    }
    artifact = _md_uri(out)
    lines = finding_lines(model)
    out.write('{"$schema":%s,"version":"2.1.0","runs":[{\n' % _dumps(SARIF_SCHEMA_URI))
    out.write('"tool":{"driver":%s},\n' % _dumps(driver))
    out.write('"automationDetails":{"id":%s},\n' % _dumps("nsguard.sysctl/fleet/" + model["generated_at"]))
    if artifact.get("uriBaseId"):
        root = quote(os.getcwd().replace(os.sep, "/").rstrip("/") + "/")
        out.write('"originalUriBaseIds":%s,\n' % _dumps({SRCROOT: {"uri": "file://" + root}}))
    out.write('"invocations":[%s],\n' % _dumps(invocation))
    out.write('"results":[')
    first = True
    for i, finding in enumerate(findings):
        if kept is not None and i not in kept:
            continue
        out.write("\n" if first else ",\n")
        first = False
        out.write(_dumps(_result(finding, index[finding["rule"]], artifact, lines[i])))
    out.write("\n]}]}\n")
