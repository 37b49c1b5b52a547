"""Fleet model and every output format, from synthetic facts/findings (docs/facts.md, docs/findings.md).

The outputs are checked with the real consumers: jsonschema against the shipped fleet schema and
the OASIS SARIF 2.1.0 schema, ElementTree for JUnit, markdown-it (CommonMark + GFM tables) for
Markdown, PyYAML + ansible-playbook for the remediation playbook (tests/reports/test_remediation.py).
"""
from __future__ import annotations

import copy
import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from html.parser import HTMLParser

import pytest

from ansible_collections.nsguard.sysctl.plugins.plugin_utils import renderers, report
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.render_common import md_escape
from tests.reports.helpers import errors_of, fleet_validator, sarif_validator, write_fleet
from tests.reports.synthetic import HOSTILE_CMDLINE, HOSTILE_LABEL, HOSTILE_NAME, make_fleet


@pytest.fixture(scope="module")
def fleet():
    return make_fleet(3, 6, unreachable=1, failed=1, hostile=True)


@pytest.fixture(scope="module")
def written(fleet, tmp_path_factory):
    dest = tmp_path_factory.mktemp("fleet")
    model = write_fleet(fleet, dest, docs_base_url="https://docs.example/nsguard/")
    return model, dest


def _expected_counts(fleet):
    counts = Counter()
    for entry in fleet.values():
        for f in entry.get("findings") or []:
            counts[f["severity"]] += 1
    return counts


# ---------------------------------------------------------------- model

def test_model_counts_statuses_and_containers(fleet, written):
    model, dummy = written
    expected = _expected_counts(fleet)
    s = model["summary"]
    assert s["findings"] == {"total": sum(expected.values()), "error": expected["error"],
                             "warning": expected["warning"], "info": expected["info"]}
    assert s["hosts"] == {"total": 5, "ok": 3, "unreachable": 1, "failed": 1, "partial": 0}
    assert s["containers"] == 3 * 6
    statuses = {h["name"]: h["status"] for h in model["hosts"]}
    assert statuses["gone00.example"] == "unreachable" and statuses["broken00.example"] == "failed"
    gone = next(h for h in model["hosts"] if h["name"] == "gone00.example")
    assert "Connection refused" in gone["message"]
    # per-rule totals add up to the fleet total, per-host too
    assert sum(r["findings"]["total"] for r in model["rules"]) == s["findings"]["total"]
    assert sum(h["findings"]["total"] for h in model["hosts"]) == s["findings"]["total"]
    # per-container counts: every finding with a set_id lands on exactly one container row
    assert sum(c["findings"]["total"] for c in model["containers"]) == sum(
        1 for e in fleet.values() for f in e.get("findings") or [] if f["set_id"])
    # conntrack: one row per netns of every audited host, use = count / max
    assert len(model["conntrack"]) == 3 * (6 + 1)
    row = model["conntrack"][0]
    assert row["use"] == pytest.approx(row["count"] / row["max"], abs=1e-6)
    assert row["count"] == max(r["count"] for r in model["conntrack"])


def test_model_is_pure(fleet):
    before = copy.deepcopy(fleet)
    report.build_fleet(fleet)
    assert fleet == before


def test_bad_input_is_reported_and_the_rest_continues():
    good = make_fleet(1, 2)
    name = next(iter(good))
    bad = {
        name: good[name],
        "h-list-findings": {"status": "ok", "findings": "not a list"},
        "h-bad-items": {"status": "ok", "findings": [42, {"severity": "error"}, {"rule": "NSG001", "severity": "fatal"},
                                                     {"rule": "NSG002", "severity": "info", "host": "elsewhere"}]},
        "h-status": {"status": "exploded"},
        "h-facts": {"status": "ok", "facts": ["not", "a", "mapping"]},
    }
    model = report.build_fleet(bad)
    problems = {(p["host"], p["where"]) for p in model["problems"]}
    assert ("h-list-findings", "findings") in problems
    assert ("h-bad-items", "findings[0]") in problems
    assert ("h-bad-items", "findings[1].rule") in problems
    assert ("h-bad-items", "findings[2].severity") in problems
    assert ("h-bad-items", "findings[3].host") in problems
    assert ("h-status", "status") in problems
    assert ("h-facts", "facts") in problems
    # the malformed-severity finding is kept as an error, the misattributed one under its host
    hb = next(h for h in model["hosts"] if h["name"] == "h-bad-items")
    assert hb["findings"] == {"total": 2, "error": 1, "warning": 0, "info": 1}
    assert next(h for h in model["hosts"] if h["name"] == "h-status")["status"] == "failed"
    # the good host is untouched by its neighbours
    assert next(h for h in model["hosts"] if h["name"] == name)["findings"]["total"] == len(good[name]["findings"])
    assert not errors_of(fleet_validator(), json.loads(json.dumps(model)))


@pytest.mark.parametrize("fail_on,counts,hosts,expected", [
    ("never", {"error": 3, "warning": 0}, {"unreachable": 1}, False),
    ("error", {"error": 0, "warning": 5}, {}, False),
    ("error", {"error": 1, "warning": 0}, {}, True),
    ("warning", {"error": 0, "warning": 1}, {}, True),
    ("warning", {"error": 0, "warning": 0}, {}, False),
    ("error", {"error": 0, "warning": 0}, {"failed": 1}, True),
])
def test_should_fail(fail_on, counts, hosts, expected):
    model = {"summary": {"findings": dict({"info": 4, "total": 0}, **counts),
                         "hosts": dict({"unreachable": 0, "failed": 0}, **hosts)}}
    assert report.should_fail(model, fail_on) is expected


def test_should_fail_rejects_unknown_threshold():
    with pytest.raises(ValueError, match="fail_on"):
        report.should_fail({"summary": {}}, "sometimes")


def test_summary_line_names_every_severity(written):
    model, dummy = written
    line = report.summary_line(model)
    f = model["summary"]["findings"]
    assert "%d error, %d warning, %d info" % (f["error"], f["warning"], f["info"]) in line
    assert "1 unreachable, 1 failed" in line


# ---------------------------------------------------------------- fleet.json

def test_fleet_json_is_valid_against_the_shipped_schema(written):
    model, dest = written
    doc = json.loads((dest / "fleet.json").read_text())
    assert not errors_of(fleet_validator(), doc)
    assert doc["summary"] == model["summary"]
    assert len(doc["findings"]) == model["summary"]["findings"]["total"]
    # the validator really checks: a broken document is refused
    broken = copy.deepcopy(doc)
    broken["hosts"][0]["status"] = "sleeping"
    del broken["summary"]["findings"]["error"]
    assert len(errors_of(fleet_validator(), broken)) == 2


def test_fleet_schema_name_matches_contract():
    from tests.reports.helpers import FLEET_SCHEMA
    assert re.fullmatch(r".*report.*\.schema\.json", FLEET_SCHEMA.name)


# ---------------------------------------------------------------- SARIF

def test_sarif_is_valid_2_1_0_with_help_uris(written):
    model, dest = written
    doc = json.loads((dest / "fleet.sarif").read_text())
    validator = sarif_validator()
    assert not errors_of(validator, doc)
    run = doc["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == [r["id"] for r in model["rules"]]
    for r in rules:
        assert r["helpUri"] == "https://docs.example/nsguard/docs/rules/%s.md" % r["id"]
    assert len(run["results"]) == model["summary"]["findings"]["total"]
    for res in run["results"]:
        assert rules[res["ruleIndex"]]["id"] == res["ruleId"]
    levels = Counter(r["level"] for r in run["results"])
    f = model["summary"]["findings"]
    assert levels == Counter({"error": f["error"], "warning": f["warning"], "note": f["info"]})
    # hosts that were not audited are listed, and the run is not "successful"
    inv = run["invocations"][0]
    assert inv["executionSuccessful"] is False
    notes = {n["descriptor"]["id"]: n for n in inv["toolExecutionNotifications"]}
    assert "gone00.example" in notes["host-unreachable"]["message"]["text"]
    assert "broken00.example" in notes["host-failed"]["message"]["text"]
    # fingerprints are unique per finding
    prints = [r["partialFingerprints"]["nsguardFinding/v1"] for r in run["results"]]
    assert len(set(prints)) == len(prints)
    # the validator really checks
    bad = copy.deepcopy(doc)
    bad["version"] = "2.0.0"
    bad["runs"][0]["results"][0]["level"] = "fatal"
    assert len(errors_of(validator, bad)) >= 2


# ---------------------------------------------------------------- JUnit

def test_junit_one_case_per_host_and_rule(written):
    model, dest = written
    root = ET.parse(dest / "fleet.junit.xml").getroot()
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [h["name"] for h in model["hosts"]]
    n_rules = len(model["rules"])
    cases = root.findall("testsuite/testcase")
    assert len(cases) == len(model["hosts"]) * n_rules == int(root.get("tests"))
    by_host = {s.get("name"): s for s in suites}
    for host in model["hosts"]:
        suite = by_host[host["name"]]
        if host["status"] != "ok":
            assert len(suite.findall("testcase/error")) == n_rules
            assert host["status"] in suite.find("testcase/error").get("message")
            continue
        failing_rules = {f["rule"] for f in model["findings"] if f["host"] == host["name"] and f["severity"] != "info"}
        failed = {c.get("name").split()[0] for c in suite.findall("testcase") if c.find("failure") is not None}
        assert failed == failing_rules
        assert int(suite.get("failures")) == len(failing_rules)
    assert int(root.get("failures")) == sum(int(s.get("failures")) for s in suites)
    assert int(root.get("errors")) == 2 * n_rules
    # tenant text survives XML escaping exactly
    text = "".join(el.text or "" for el in root.iter("failure")) + "".join(el.text or "" for el in root.iter("system-out"))
    assert HOSTILE_NAME in text


# ---------------------------------------------------------------- Markdown

class _Cells(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = Counter()
        self.rows = []
        self._row = None
        self._cell = None

    def handle_starttag(self, tag, attrs):
        self.tags[tag] += 1
        if tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._row is not None:
            self._row.append("".join(self._cell))
            self._cell = None
        elif tag == "tr":
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _render_markdown(text: str) -> str:
    from markdown_it import MarkdownIt
    return MarkdownIt("commonmark").enable("table").enable("strikethrough").render(text)


def test_markdown_escapes_tenant_text(written):
    model, dest = written
    text = (dest / "fleet.md").read_text()
    assert "<script" not in text and "<img" not in text and "<b>" not in text
    html = _render_markdown(text)
    parser = _Cells()
    parser.feed(html)
    # no markup from tenants: the only tags are those of the report itself
    assert set(parser.tags) <= {"h1", "h2", "h3", "p", "table", "thead", "tbody", "tr", "th", "td", "code"}
    # every table row has as many cells as its header (a "|" in a label did not split a cell)
    tables = re.findall(r"<table>.*?</table>", html, flags=re.S)
    assert len(tables) >= 5
    for table in tables:
        p = _Cells()
        p.feed(table)
        widths = {len(r) for r in p.rows}
        assert len(widths) == 1, widths
    # the hostile values come back as the exact text, in one cell each
    cells = [c for row in parser.rows for c in row]
    assert HOSTILE_CMDLINE in cells
    assert HOSTILE_NAME in cells
    labels = ", ".join("%s=%s" % kv for kv in sorted(HOSTILE_LABEL.items())).replace("\n", " ")
    assert labels in cells
    # not-audited hosts are listed
    assert "gone00.example" in text and "broken00.example" in text


@pytest.mark.parametrize("value", [
    "| a | b |", "**x** _y_ `z`", "[l](http://evil.example/)", "<b>x</b> &amp;", "line1\nline2\r\n| x |",
    "www.evil.example and https://evil.example/x", "\\| escaped pipe", "![img](x.png)", "~~gone~~", "\x1b[31mred",
])
def test_md_escape_round_trips_as_text(value):
    html = _render_markdown("| h |\n|---|\n| %s |\n" % md_escape(value))
    p = _Cells()
    p.feed(html)
    assert p.rows[1] == [value.replace("\r\n", " ").replace("\n", " ").replace("\x1b", "\ufffd")]
    assert "<a " not in html and "<img" not in html and "<strong>" not in html and "<s>" not in html


# ---------------------------------------------------------------- HTML (static; the browser test is separate)

class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.starts = []

    def handle_starttag(self, tag, attrs):
        self.starts.append((tag, dict(attrs)))


def test_html_is_self_contained_and_escaped(written):
    dummy, dest = written
    text = (dest / "fleet.html").read_text()
    p = _Tags()
    p.feed(text)
    tags = Counter(t for t, dummy in p.starts)
    assert tags["script"] == 2                      # our data block and our code, nothing else
    assert not tags["img"] and not tags["link"] and not tags["iframe"] and not tags["object"]
    for tag, attrs in p.starts:
        assert "src" not in attrs, (tag, attrs)
        assert not (attrs.get("href") or "").startswith(("http:", "https:", "//")), (tag, attrs)
        assert not any(k.startswith("on") for k in attrs), (tag, attrs)
    assert "default-src 'none'" in text             # CSP: nothing external can load
    assert HOSTILE_CMDLINE not in text and "<img src=x" not in text
    # the embedded data still holds the exact strings
    data = re.search(r'<script type="application/json" id="nsg-data">(.*?)</script>', text, re.S).group(1)
    strings = json.loads(data)["strings"]
    assert HOSTILE_CMDLINE in strings and HOSTILE_NAME in strings


# ---------------------------------------------------------------- robustness

def test_unknown_format_is_an_error_and_the_others_are_written(tmp_path):
    model = report.build_fleet(make_fleet(1, 1))
    written, errors = renderers.write_reports(model, str(tmp_path), ["json", "pdf", "md"])
    assert set(written) == {"json", "md"} and "pdf" in errors and "unknown format" in errors["pdf"]


def test_surrogates_and_controls_do_not_break_outputs(tmp_path):
    fleet = make_fleet(1, 2)
    host = next(iter(fleet))
    nset = fleet[host]["facts"]["namespace_sets"][0]
    nset["init"]["cmdline"] = "bad\udcff bytes \x00\x1b[2J"
    nset["identity"]["labels"] = {"x\u2028y": "z\x07"}
    # a comm set with prctl(PR_SET_NAME) to bytes that decode to U+FFFF (issue 11): XML 1.0 forbids
    # it, and it once made the whole fleet.junit.xml unparseable
    nset["init"]["comm"] = "x\uffffy\ufffe"
    fleet[host]["findings"][0] = dict(fleet[host]["findings"][0], message="comm x\uffffy")
    model = write_fleet(fleet, tmp_path)
    assert not errors_of(fleet_validator(), json.loads((tmp_path / "fleet.json").read_text()))
    ET.parse(tmp_path / "fleet.junit.xml")
    junit = (tmp_path / "fleet.junit.xml").read_text()
    assert "\uffff" not in junit and "comm x\ufffdy" in junit
    # the surrogate is shown as the replacement character, never passed on
    assert "bad\ufffd bytes" in (tmp_path / "fleet.html").read_text()
    assert model["summary"]["problems"] == 0
