"""fleet.sarif as GitHub code scanning ingests it.

Two checks on the same file: the OASIS SARIF 2.1.0 schema (the copy in tests/schemas/),
and code scanning's documented ingestion rules, written out below with their sources:

- GitHub Docs, "SARIF support for code scanning" (docs.github.com/en/code-security/reference/
  code-scanning/sarif-files/sarif-support): results need a ``physicalLocation`` in
  ``locations`` with ``artifactLocation.uri`` (a path in the repository, relative, or a ``file``
  URI that upload-sarif relativises against ``checkout_path``) and ``region.startLine``; rules
  need ``shortDescription``, ``fullDescription`` and ``help`` (text or markdown); fingerprints
  via ``partialFingerprints``; the ``ruleId`` stays the same across analyses.
- GitHub Docs, "SARIF results exceed one or more limits" (.../troubleshooting-sarif-uploads/
  results-exceed-limit): hard limits of 20 runs per file, 25,000 results per run, 25,000 rules
  per run, 1,000 locations per result, 20 tags per rule; and "SARIF file is too large": 10 MB
  gzip-compressed.
- The SARIF SDK's GitHub validation rules (microsoft/sarif-sdk, src/Sarif.Multitool.Library/Rules,
  commit 017851512eb7603c6b0cab44af696f93a9d14062): GH1001 (a location has a physicalLocation),
  GH1003 (region.startLine), GH1005 (relative URIs or file paths), GH2012 (shortDescription,
  fullDescription, help.text).
"""
from __future__ import annotations

import copy
import gzip
import json
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from ansible_collections.nsguard.sysctl.plugins.plugin_utils import render_sarif, renderers, report
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.render_common import md_code
from tests.reports.helpers import REPO, errors_of, sarif_validator
from tests.reports.synthetic import make_fleet

LIMITS = {"runs": 20, "results": 25000, "rules": 25000, "locations": 1000, "tags": 20, "gzip_bytes": 10 * 1024 * 1024}


def code_scanning_problems(doc: dict, raw: bytes) -> list:
    """What code scanning would refuse or not show, as messages; [] when it takes the file."""
    problems = []
    if doc.get("version") != "2.1.0":
        problems.append("version is not 2.1.0")
    if len(gzip.compress(raw)) > LIMITS["gzip_bytes"]:
        problems.append("larger than 10 MB gzip-compressed")
    runs = doc.get("runs")
    if not isinstance(runs, list) or len(runs) > LIMITS["runs"]:
        problems.append("runs missing or more than 20")
        return problems
    for r, run in enumerate(runs):
        driver = run.get("tool", {}).get("driver", {})
        if not driver.get("name"):
            problems.append("run %d: tool.driver.name missing" % r)
        rules = driver.get("rules") or []
        if len(rules) > LIMITS["rules"]:
            problems.append("run %d: more than 25,000 rules" % r)
        ids = []
        for i, rule in enumerate(rules):
            where = "run %d rule %s" % (r, rule.get("id", i))
            ids.append(rule.get("id"))
            for field in ("shortDescription", "fullDescription"):
                if not str((rule.get(field) or {}).get("text") or "").strip():
                    problems.append("%s: %s.text missing (GH2012)" % (where, field))
            help_ = rule.get("help") or {}
            if not str(help_.get("text") or "").strip():
                problems.append("%s: help.text missing (GH2012)" % where)
            if re.fullmatch(r"\s*See \S+\s*", str(help_.get("text") or "")):
                problems.append("%s: help.text is only a link" % where)
            if len((rule.get("properties") or {}).get("tags") or []) > LIMITS["tags"]:
                problems.append("%s: more than 20 tags" % where)
        results = run.get("results") or []
        if len(results) > LIMITS["results"]:
            problems.append("run %d: more than 25,000 results" % r)
        bases = run.get("originalUriBaseIds") or {}
        for n, res in enumerate(results):
            where = "run %d result %d" % (r, n)
            if not res.get("ruleId") or res.get("ruleId") not in ids:
                problems.append("%s: ruleId not among the rules" % where)
            if "ruleIndex" in res and ids[res["ruleIndex"]] != res["ruleId"]:
                problems.append("%s: ruleIndex points at another rule" % where)
            if not str((res.get("message") or {}).get("text") or "").strip():
                problems.append("%s: message.text missing" % where)
            locations = res.get("locations") or []
            if not locations or len(locations) > LIMITS["locations"]:
                problems.append("%s: needs 1 to 1,000 locations" % where)
            for loc in locations[:1]:
                physical = loc.get("physicalLocation")
                if not physical:
                    problems.append("%s: no physicalLocation (GH1001)" % where)
                    continue
                artifact = physical.get("artifactLocation") or {}
                uri = artifact.get("uri")
                if not uri:
                    problems.append("%s: no artifactLocation.uri (GH1001)" % where)
                elif urlparse(uri).scheme or uri.startswith("/") or ".." in uri.split("/"):
                    problems.append("%s: uri %r is not repository-relative (GH1005)" % (where, uri))
                if artifact.get("uriBaseId") and artifact["uriBaseId"] not in bases:
                    problems.append("%s: uriBaseId %s not in originalUriBaseIds" % (where, artifact["uriBaseId"]))
                line = (physical.get("region") or {}).get("startLine")
                if not isinstance(line, int) or line < 1:
                    problems.append("%s: no region.startLine (GH1003)" % where)
            prints = res.get("partialFingerprints") or {}
            if not prints or not all(isinstance(v, str) and v for v in prints.values()):
                problems.append("%s: no partialFingerprints" % where)
    return problems


@pytest.fixture()
def checkout(tmp_path, monkeypatch):
    """A pipeline's checkout: ansible-playbook runs at its root and writes the reports to reports/."""
    root = tmp_path / "infra repo"
    (root / "reports").mkdir(parents=True)
    monkeypatch.chdir(root)
    return root


def _write(fleet: dict, dest: Path, **kwargs) -> dict:
    model = report.build_fleet(fleet, **kwargs)
    written, errors = renderers.write_reports(model, str(dest), ["md", "sarif"])
    assert not errors, errors
    return model


def _load(path: Path) -> tuple:
    raw = path.read_bytes()
    return json.loads(raw), raw


def test_fleet_sarif_passes_the_schema_and_code_scanning_rules(checkout):
    fleet = make_fleet(3, 6, unreachable=1, failed=1, hostile=True)
    model = _write(fleet, checkout / "reports")
    doc, raw = _load(checkout / "reports" / "fleet.sarif")
    assert not errors_of(sarif_validator(), doc)
    assert code_scanning_problems(doc, raw) == []
    run = doc["runs"][0]
    assert len(run["results"]) == model["summary"]["findings"]["total"] > 0
    # Each result opens the row of fleet.md that lists it, by a path relative to the checkout.
    md_lines = (checkout / "reports" / "fleet.md").read_text().splitlines()
    base = unquote(urlparse(run["originalUriBaseIds"][render_sarif.SRCROOT]["uri"]).path)
    assert Path(base) == checkout
    for res, finding in zip(run["results"], model["findings"]):
        physical = res["locations"][0]["physicalLocation"]
        assert physical["artifactLocation"] == {"uri": "reports/fleet.md", "uriBaseId": render_sarif.SRCROOT}
        row = md_lines[physical["region"]["startLine"] - 1]
        assert row.startswith("| %s | %s |" % (finding["severity"], md_code(finding["rule"]))), row
        if finding.get("key"):
            assert md_code(finding["key"]) in row
        # the row is in its host's section
        heading = next(line for line in reversed(md_lines[:physical["region"]["startLine"]]) if line.startswith("### "))
        assert finding["host"] in heading or "\\" in heading  # hostile names are escaped


def test_rules_carry_the_catalog_text_and_the_rule_page():
    from ansible_collections.nsguard.sysctl.plugins.plugin_utils.rule_catalog import load_catalog
    catalog = load_catalog()
    model = report.build_fleet(make_fleet(1, 2), rules={r.id: {"name": r.name, "severity": r.severity} for r in catalog})
    import io
    out = io.StringIO()
    render_sarif.render_sarif(model, out)
    rules = {r["id"]: r for r in json.loads(out.getvalue())["runs"][0]["tool"]["driver"]["rules"]}
    assert set(rules) == {r.id for r in catalog}
    for rule in catalog:
        sarif = rules[rule.id]
        assert sarif["shortDescription"]["text"] == rule.title
        assert sarif["fullDescription"]["text"] == " ".join(rule.rationale.split())
        page = (REPO / "docs" / "rules" / ("%s.md" % rule.id)).read_text()
        assert sarif["help"]["markdown"] == page.split("\n", 1)[1]  # the page without its "generated" note
        assert sarif["help"]["text"].startswith("# %s %s" % (rule.id, rule.name))
    # A StringIO has no path: the location is fleet.md next to fleet.sarif.
    res = json.loads(out.getvalue())["runs"][0]["results"][0]
    assert res["locations"][0]["physicalLocation"]["artifactLocation"] == {"uri": "fleet.md"}


def test_fingerprints_survive_restarts_new_hosts_and_time(checkout):
    """Same finding, next run: other namespace inodes (the container restarted), other line in
    fleet.md (a host was added before it), other time; the fingerprint stays, the line moves."""
    first = make_fleet(2, 4)
    _write(first, checkout / "reports", generated_at="2026-01-01T00:00:00Z")
    one, dummy = _load(checkout / "reports" / "fleet.sarif")

    second = copy.deepcopy(first)
    for entry in second.values():
        for finding in entry.get("findings") or []:
            if finding.get("set_id"):
                finding["set_id"] = finding["set_id"].replace("net:", "net:9")
        for nset in (entry.get("facts") or {}).get("namespace_sets") or []:
            nset["id"] = nset["id"].replace("net:", "net:9")
    extra = make_fleet(1, 3, seed=7)
    second.update({"aaa-" + k: v for k, v in extra.items()})
    for name, entry in second.items():
        for finding in entry.get("findings") or []:
            finding["host"] = name
    _write(second, checkout / "reports", generated_at="2026-01-02T00:00:00Z")
    two, dummy = _load(checkout / "reports" / "fleet.sarif")

    def by_print(doc):
        return {r["partialFingerprints"]["nsguardFinding/v1"]: r for r in doc["runs"][0]["results"]}

    a, b = by_print(one), by_print(two)
    assert len(a) == len(one["runs"][0]["results"])  # unique
    assert set(a) <= set(b)
    moved = [p for p in a if a[p]["locations"][0]["physicalLocation"]["region"]["startLine"]
             != b[p]["locations"][0]["physicalLocation"]["region"]["startLine"]]
    assert moved, "the added host should shift the rows in fleet.md"
    for p in a:
        assert a[p]["ruleId"] == b[p]["ruleId"]


def test_more_results_than_code_scanning_takes_keeps_the_worst(checkout, monkeypatch):
    monkeypatch.setattr(render_sarif, "MAX_RESULTS", 5)
    model = _write(make_fleet(2, 4), checkout / "reports")
    doc, raw = _load(checkout / "reports" / "fleet.sarif")
    results = doc["runs"][0]["results"]
    assert len(results) == 5 < model["summary"]["findings"]["total"]
    ranks = sorted(report.SEVERITY_RANK[f["severity"]] for f in model["findings"])
    assert sorted({"error": 0, "warning": 1, "note": 2}[r["level"]] for r in results) == ranks[:5]
    notes = {n["descriptor"]["id"]: n for n in doc["runs"][0]["invocations"][0]["toolExecutionNotifications"]}
    assert "%d of %d findings are left out" % (model["summary"]["findings"]["total"] - 5,
                                                model["summary"]["findings"]["total"]) in notes["results-truncated"]["message"]["text"]
    assert not errors_of(sarif_validator(), doc)


def test_the_checker_refuses_what_code_scanning_refuses(checkout):
    """The ingestion check is not a rubber stamp: the pre-issue-12 shape fails it."""
    _write(make_fleet(1, 2), checkout / "reports")
    doc, raw = _load(checkout / "reports" / "fleet.sarif")
    old = copy.deepcopy(doc)
    for res in old["runs"][0]["results"]:
        res["locations"] = [{"logicalLocations": res["locations"][0]["logicalLocations"]}]
    for rule in old["runs"][0]["tool"]["driver"]["rules"]:
        rule.pop("fullDescription")
        rule["help"] = {"text": "See %s" % rule["helpUri"]}
    problems = code_scanning_problems(old, raw)
    assert any("no physicalLocation" in p for p in problems)
    assert any("fullDescription.text missing" in p for p in problems)
    assert any("help.text is only a link" in p for p in problems)
    absolute = copy.deepcopy(doc)
    absolute["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] = "https://x/y"
    assert any("not repository-relative" in p for p in code_scanning_problems(absolute, raw))
    # and the schema itself still passes the old shape: only the code scanning check catches it
    assert not errors_of(sarif_validator(), old)
