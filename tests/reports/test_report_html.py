"""fleet.html in a real browser: Debian's headless Chromium renders it, runs its JS, and the
rendered DOM (``--dump-dom``, taken after the scripts ran) and a screenshot are checked."""
from __future__ import annotations

import struct
from collections import Counter
from html.parser import HTMLParser
from urllib.parse import quote

import pytest

from tests.reports.helpers import chromium, write_fleet
from tests.reports.synthetic import HOSTILE_CMDLINE, HOSTILE_LABEL, HOSTILE_NAME, make_fleet

pytestmark = pytest.mark.slow


class _Dom(HTMLParser):
    """Rows of every table by id, body attributes, svg shapes, script elements, title."""

    def __init__(self):
        super().__init__()
        self.tables = {}
        self.body = {}
        self.tags = Counter()
        self.title = ""
        self._table = None
        self._row = None
        self._cell = None
        self._in_title = False
        self._in_tbody = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags[tag] += 1
        if tag == "body":
            self.body = a
        elif tag == "title" and not self.body:   # the page title, not an SVG tooltip
            self._in_title = True
        elif tag == "table":
            self._table = a.get("id")
            if self._table:
                self.tables[self._table] = {"rows": [], "attrs": a}
        elif tag == "tbody":
            self._in_tbody = True
        elif tag == "tr" and self._in_tbody:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        elif tag == "td" and self._cell is not None:
            self._row.append("".join(self._cell))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._table in self.tables:
                self.tables[self._table]["rows"].append(self._row)
            self._row = None
        elif tag == "tbody":
            self._in_tbody = False
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    dest = tmp_path_factory.mktemp("html")
    model = write_fleet(make_fleet(4, 30, unreachable=1, failed=1, hostile=True), dest)
    return model, dest / "fleet.html"


def _dom(path, fragment=""):
    proc = chromium("file://%s%s" % (path, fragment), "--dump-dom", "--virtual-time-budget=5000")
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = _Dom()
    dom.feed(proc.stdout)
    assert dom.body.get("data-ready") == "1", (dom.body, proc.stderr[-2000:])
    assert "data-error" not in dom.body
    return dom


def test_rendered_rows_and_hostile_text(page):
    model, path = page
    dom = _dom(path)
    assert dom.title == model["title"]                     # the hostile command line never ran
    assert dom.tags["script"] == 2 and dom.tags["img"] == 0  # no element came from data
    t = dom.tables
    assert len(t["tbl-rules"]["rows"]) == len(model["rules"])
    assert len(t["tbl-hosts"]["rows"]) == len(model["hosts"])
    assert len(t["tbl-containers"]["rows"]) == min(100, len(model["containers"]))
    assert int(t["tbl-containers"]["attrs"]["data-rows"]) == len(model["containers"])
    assert len(t["tbl-findings"]["rows"]) == min(100, len(model["findings"]))
    assert int(t["tbl-findings"]["attrs"]["data-rows"]) == model["summary"]["findings"]["total"]
    # findings are sorted worst first by default
    sevs = [r[0] for r in t["tbl-findings"]["rows"]]
    order = {"error": 0, "warning": 1, "info": 2}
    assert sevs == sorted(sevs, key=order.get) and sevs[0] == "error"
    # rule summary cells match the model
    rules = {r[0]: r for r in t["tbl-rules"]["rows"]}
    for rule in model["rules"]:
        assert int(rules[rule["id"]][3]) == rule["findings"]["total"]
    # host summary lists the hosts that were not audited, with their status
    statuses = {r[0]: r[1] for r in t["tbl-hosts"]["rows"]}
    assert statuses["gone00.example"] == "unreachable" and statuses["broken00.example"] == "failed"
    # tenant text is shown as text, exactly
    containers = t["tbl-containers"]["rows"]
    hostile = [r for r in containers if r[1] == HOSTILE_NAME]
    assert len(hostile) == 1
    assert hostile[0][5] == HOSTILE_CMDLINE
    assert hostile[0][4] == ", ".join("%s=%s" % kv for kv in sorted(HOSTILE_LABEL.items()))
    # the per-host conntrack chart was drawn by JS: one bar per netns of the selected host
    # (server-side: one bar per host and one per top netns; JS: the first host's netns)
    hosts_ct = [h for h in model["hosts"] if h["conntrack"]]
    first = min(h["name"] for h in hosts_ct)
    js_bars = min(40, sum(1 for r in model["conntrack"] if r["host"] == first))
    assert dom.tags["rect"] == min(30, len(hosts_ct)) + min(30, len(model["conntrack"])) + js_bars


def test_filter_and_sort_from_the_url(page):
    model, path = page
    errors = [f for f in model["findings"] if f["severity"] == "error"]
    host = "node0002.example"
    frag = "#findings.q=%s&hosts.sort=containers:asc&containers.q=%s" % (
        quote("severity=error"), quote("host=%s image:redis" % host))
    dom = _dom(path, frag)
    t = dom.tables
    rows = t["tbl-findings"]["rows"]
    assert int(t["tbl-findings"]["attrs"]["data-rows"]) == len(errors) == len(rows)
    assert {r[0] for r in rows} == {"error"}
    hosts = [r[0] for r in t["tbl-hosts"]["rows"]]
    counts = [int(r[4]) for r in t["tbl-hosts"]["rows"]]
    assert counts == sorted(counts) and hosts[0] in ("gone00.example", "broken00.example")
    want = [c for c in model["containers"] if c["host"] == host and "redis" in (c["image"] or "")]
    got = t["tbl-containers"]["rows"]
    assert len(got) == len(want) > 0 and {r[0] for r in got} == {host}


def test_screenshot(page, tmp_path):
    dummy, path = page
    png = tmp_path / "fleet.png"
    proc = chromium("file://%s" % path, "--screenshot=%s" % png, "--window-size=1400,2000", "--virtual-time-budget=5000")
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1400, 2000)
    assert len(data) > 50_000          # a rendered page, not a blank canvas


def test_identifiers_do_not_break_long_messages_fold_and_fix_names_the_task(tmp_path):
    """At 1400 px: rule ids, host names and keys are one unbreakable word (class ident:
    white-space nowrap), a message longer than the fold keeps all its text in <details>, and
    the Fix column names the remediation task, not only host / container-spec."""
    import re
    fleet = make_fleet(2, 3)
    for entry in fleet.values():
        for finding in entry.get("findings") or []:
            finding["message"] = (finding.get("message") or "") + " because" * 120 + " THE-END-MARK"
    model = write_fleet(fleet, tmp_path)
    proc = chromium("file://%s" % (tmp_path / "fleet.html"), "--dump-dom", "--virtual-time-budget=5000",
                    "--window-size=1400,900")
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    section = dom[dom.index('id="sec-findings"'):]
    rows = re.findall(r"<tr>(.*?)</tr>", section[section.index("<tbody"):], re.S)
    assert len(rows) == min(100, model["summary"]["findings"]["total"])
    for row in rows:
        cells = re.findall(r"<td([^>]*)>(.*?)</td>", row, re.S)
        assert [attrs for attrs, dummy in cells][1:3] == [' class="ident"', ' class="ident"']  # rule, host
        message, fix = cells[6][1], cells[7][1]
        assert message.startswith("<details><summary>") and "THE-END-MARK</div></details>" in message
        assert "sysctl" in fix or "none" in fix or ":" in fix
    tasks = [t["name"] for f in model["findings"] for t in (f.get("remediation") or {}).get("tasks") or []]
    assert tasks and any(html_unescape_in(t, section) for t in tasks)
    assert "td.ident{white-space:nowrap" in (tmp_path / "fleet.html").read_text()


def html_unescape_in(text: str, dom: str) -> bool:
    import html
    return html.escape(text, quote=False) in dom or text in dom
