# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""fleet.sarif: the fleet's findings as SARIF 2.1.0 (OASIS errata01 schema).

One run; ``tool.driver.rules`` holds every rule of the report with ``helpUri`` at
``<docs_base_url>docs/rules/<id>.md``. A finding has no source file, so results carry logical
locations (``host/container/key``). Hosts that were not audited and input problems are
``invocations[0].toolExecutionNotifications``, and ``executionSuccessful`` is false when a host
was unreachable or failed: they are listed, not dropped.
"""
from __future__ import annotations

import hashlib
import json
from typing import IO, Any, Dict, List, Mapping

from .render_common import clean_text, values_text
from .report import finding_where

__all__ = ["render_sarif", "SARIF_SCHEMA_URI", "LEVELS"]

SARIF_SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
LEVELS = {"error": "error", "warning": "warning", "info": "note"}


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _rule(rule: Mapping[str, Any]) -> Dict[str, Any]:
    text = rule.get("summary") or rule["name"]
    return {
        "id": rule["id"],
        "name": rule["name"],
        "shortDescription": {"text": clean_text(text)},
        "helpUri": rule["help_uri"],
        "help": {"text": "See %s" % rule["help_uri"]},
        "defaultConfiguration": {"level": LEVELS[rule["severity"]]},
        "properties": {"tags": ["nsguard", "sysctl", rule["name"]]},
    }


def _fingerprint(finding: Mapping[str, Any]) -> str:
    # Stable across runs: container *identity* rather than namespace inode numbers, which
    # change whenever a container restarts.
    container = finding.get("container") if isinstance(finding.get("container"), Mapping) else {}
    who = container.get("name") or container.get("id") or ("" if not finding.get("set_id") else "set")
    raw = "\x1f".join(str(x) for x in (finding["host"], finding["rule"], container.get("runtime") or "", who,
                                       finding.get("key") or ""))
    return hashlib.sha256(raw.encode("utf-8", "backslashreplace")).hexdigest()


def _result(finding: Mapping[str, Any], rule_index: int) -> Dict[str, Any]:
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
        "locations": [{"logicalLocations": [
            {"name": clean_text(key) if key else where, "fullyQualifiedName": fqn,
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


def render_sarif(model: Mapping[str, Any], out: IO[str]) -> None:
    rules = model["rules"]
    index = {r["id"]: i for i, r in enumerate(rules)}
    driver = {
        "name": model["generator"]["name"],
        "version": model["generator"]["version"],
        "informationUri": model["docs_base_url"],
        "rules": [_rule(r) for r in rules],
    }
    hosts = model["summary"]["hosts"]
    invocation = {
        "executionSuccessful": not (hosts["unreachable"] or hosts["failed"]),
        "endTimeUtc": model["generated_at"],
        "toolExecutionNotifications": _notifications(model),
        "properties": {"hosts": hosts},
    }
    out.write('{"$schema":%s,"version":"2.1.0","runs":[{\n' % _dumps(SARIF_SCHEMA_URI))
    out.write('"tool":{"driver":%s},\n' % _dumps(driver))
    out.write('"automationDetails":{"id":%s},\n' % _dumps("nsguard.sysctl/fleet/" + model["generated_at"]))
    out.write('"invocations":[%s],\n' % _dumps(invocation))
    out.write('"results":[')
    first = True
    for finding in model["findings"]:
        out.write("\n" if first else ",\n")
        first = False
        out.write(_dumps(_result(finding, index[finding["rule"]])))
    out.write("\n]}]}\n")
