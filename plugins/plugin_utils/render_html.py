# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""fleet.html: one self-contained page (no external assets) for people.

- Server-side (readable without JavaScript): the summary, the hosts that were not audited, and
  two inline SVG charts of conntrack use (entries per host; use of nf_conntrack_max per
  network namespace).
- Client-side (inline JS): tables of rules, hosts, containers and findings with filtering,
  sorting and paging, and a per-host chart of conntrack entries per network namespace. The
  data travels as JSON inside ``<script type="application/json">`` with a string table (a fleet
  repeats host names, rule ids, images and messages a lot), and JS only ever inserts it with
  ``textContent``: a command line ``<script>...`` is text, never markup.
- A Content-Security-Policy meta tag forbids every external load, so the page cannot fetch
  anything even if a value slipped through.

Filter syntax in every table: words match any column; ``col:text`` matches a column that
contains text; ``col=text`` matches a column equal to text; quotes group words. The state is
kept in the URL fragment (``#findings.q=host%3Dnode1&findings.sort=key:desc``), so a filtered
view can be linked.
"""
from __future__ import annotations

from typing import IO, Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .render_common import clean_text, html_escape, json_for_script, short, values_text
from .report import finding_where
from .vocabulary import SEVERITY_RANK

__all__ = ["render_html"]

CHART_TOP = 30

_CSS = """
:root{--fg:#1d2330;--muted:#5c6577;--line:#d9dde5;--bg:#f6f7f9;--err:#c62828;--warn:#b26a00;--info:#1565c0;--ok:#2e7d32}
*{box-sizing:border-box}body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);margin:0;background:var(--bg)}
header{background:#1d2330;color:#fff;padding:14px 24px}header h1{margin:0;font-size:20px}header p{margin:4px 0 0;color:#c5cbd6}
main{padding:16px 24px;max-width:1600px}section{background:#fff;border:1px solid var(--line);border-radius:6px;padding:12px 16px;margin:0 0 16px}
h2{font-size:17px;margin:0 0 10px}.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{border:1px solid var(--line);border-radius:6px;padding:8px 14px;min-width:110px;background:#fff}
.card b{display:block;font-size:22px}.card span{color:var(--muted)}.sev-error,.st-failed,.st-unreachable{color:var(--err);font-weight:600}
.sev-warning{color:var(--warn);font-weight:600}.sev-info{color:var(--info)}.st-ok{color:var(--ok)}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{border-bottom:1px solid var(--line);padding:4px 6px;text-align:left;vertical-align:top}
th{background:#eef0f4;position:sticky;top:0;cursor:pointer;user-select:none;white-space:nowrap}th[aria-sort=ascending]::after{content:" \\25B2"}
th[aria-sort=descending]::after{content:" \\25BC"}
td.num,th.num{text-align:right}td{overflow-wrap:break-word;max-width:520px}td.ident{white-space:nowrap;overflow-wrap:normal;word-break:normal}
section{overflow-x:auto}details summary{cursor:pointer}details[open] summary{display:none}td:first-child{white-space:nowrap}code{font-size:12px}
.tools{display:flex;gap:8px;align-items:center;margin:0 0 8px;flex-wrap:wrap}
.tools input{flex:1;min-width:260px;padding:5px 8px;border:1px solid var(--line);border-radius:4px}
.tools select,.tools button{padding:4px 8px}.pager{color:var(--muted);font-size:12px}
button.link{border:0;background:none;color:var(--info);cursor:pointer;padding:0;font:inherit;text-align:left}
.charts{display:flex;flex-wrap:wrap;gap:16px}.chart{flex:1 1 30%;min-width:380px}svg text{font:11px system-ui,sans-serif;fill:var(--fg)}
.note{color:var(--muted);font-size:12px}
"""

# Inline JS: no library, no network. Everything from the data goes in with textContent.
_JS = r"""
(function () {
  'use strict';
  var body = document.body;
  try {
    var D = JSON.parse(document.getElementById('nsg-data').textContent);
    var S = D.strings;
    var SEV = ['error', 'warning', 'info'];
    var LONG = 240;
    var COLS = {
      rules: [
        {k: 'rule', l: 'Rule', id: 1}, {k: 'name', l: 'Name', id: 1}, {k: 'severity', l: 'Severity', sev: 1},
        {k: 'findings', l: 'Findings', n: 1}, {k: 'error', l: 'error', n: 1}, {k: 'warning', l: 'warning', n: 1},
        {k: 'info', l: 'info', n: 1}, {k: 'hosts', l: 'Hosts', n: 1}, {k: 'containers', l: 'Containers', n: 1},
        {k: 'keys', l: 'Frequent keys'}, {k: 'help', l: 'Docs', link: 1}],
      hosts: [
        {k: 'host', l: 'Host', f: 'findings', id: 1}, {k: 'status', l: 'Status', st: 1}, {k: 'message', l: 'Message'},
        {k: 'kernel', l: 'Kernel'}, {k: 'containers', l: 'Containers', n: 1}, {k: 'error', l: 'error', n: 1},
        {k: 'warning', l: 'warning', n: 1}, {k: 'info', l: 'info', n: 1}, {k: 'conntrack', l: 'Conntrack entries', n: 1},
        {k: 'peak', l: 'Peak netns use %', n: 1}, {k: 'gathered', l: 'Gathered'}],
      containers: [
        {k: 'host', l: 'Host', s: 1, id: 1}, {k: 'container', l: 'Container', s: 1}, {k: 'runtime', l: 'Runtime', s: 1},
        {k: 'image', l: 'Image', s: 1}, {k: 'labels', l: 'Labels', s: 1}, {k: 'cmdline', l: 'Command line', s: 1},
        {k: 'error', l: 'error', n: 1}, {k: 'warning', l: 'warning', n: 1}, {k: 'info', l: 'info', n: 1},
        {k: 'conntrack', l: 'Conntrack', n: 1}],
      findings: [
        {k: 'severity', l: 'Severity', sev: 1}, {k: 'rule', l: 'Rule', s: 1, id: 1}, {k: 'host', l: 'Host', s: 1, id: 1},
        {k: 'container', l: 'Container', s: 1}, {k: 'key', l: 'Key', s: 1, id: 1}, {k: 'values', l: 'Values', s: 1},
        {k: 'message', l: 'Message', s: 1, long: 1}, {k: 'fix', l: 'Fix', s: 1, long: 1}]
    };
    var TABLES = {};

    function decode(name) {
      var cols = COLS[name];
      return D[name].map(function (raw) {
        var row = raw.map(function (v, j) {
          if (cols[j].s && v !== null) { return S[v]; }
          if (cols[j].sev) { return typeof v === 'number' ? SEV[v] : v; }
          return v;
        });
        row.hay = row.map(function (v) { return v === null ? '' : String(v).toLowerCase(); });
        return row;
      });
    }
    function tokens(q) {
      var out = [], re = /(?:([A-Za-z_]+)([:=]))?(?:"([^"]*)"|(\S+))/g, m;
      while ((m = re.exec(q)) !== null) {
        out.push({col: m[1] ? m[1].toLowerCase() : null, op: m[2] || ':', v: (m[3] !== undefined ? m[3] : m[4]).toLowerCase()});
      }
      return out;
    }
    function Table(name) {
      var self = this;
      this.name = name; this.cols = COLS[name]; this.rows = decode(name);
      this.q = ''; this.sort = null; this.dir = 1; this.page = 0; this.size = 100;
      var sec = document.getElementById('sec-' + name);
      this.input = sec.querySelector('input'); this.pager = sec.querySelector('.pager');
      this.tbody = sec.querySelector('tbody'); this.sizeSel = sec.querySelector('select.size');
      this.quick = sec.querySelector('select.quick');
      var tr = sec.querySelector('thead tr');
      this.ths = this.cols.map(function (c, j) {
        var th = document.createElement('th');
        th.textContent = c.l; th.dataset.col = c.k; if (c.n) { th.className = 'num'; }
        th.addEventListener('click', function () {
          if (self.sort === j) { self.dir = -self.dir; } else { self.sort = j; self.dir = c.n ? -1 : 1; }
          self.page = 0; self.render(true);
        });
        tr.appendChild(th); return th;
      });
      this.input.addEventListener('input', function () { self.q = self.input.value; self.page = 0; self.render(true); });
      if (this.quick) { this.quick.addEventListener('change', function () { self.page = 0; self.render(true); }); }
      this.sizeSel.addEventListener('change', function () { self.size = +self.sizeSel.value; self.page = 0; self.render(true); });
      sec.querySelector('button.prev').addEventListener('click', function () { if (self.page > 0) { self.page--; self.render(true); } });
      sec.querySelector('button.next').addEventListener('click', function () { self.page++; self.render(true); });
    }
    Table.prototype.colIndex = function (key) {
      for (var j = 0; j < this.cols.length; j++) { if (this.cols[j].k === key) { return j; } }
      return -1;
    };
    Table.prototype.filtered = function () {
      var self = this, toks = tokens(this.q + (this.quick && this.quick.value ? ' ' + this.quick.value : ''));
      var checks = toks.map(function (t) {
        var j = t.col ? self.colIndex(t.col) : -1;
        if (t.col && j < 0) { return function (row) { return row.hay.join('\u0001').indexOf(t.col + t.op + t.v) >= 0; }; }
        if (j >= 0) {
          return t.op === '=' ? function (row) { return row.hay[j] === t.v; } : function (row) { return row.hay[j].indexOf(t.v) >= 0; };
        }
        return function (row) { for (var i = 0; i < row.hay.length; i++) { if (row.hay[i].indexOf(t.v) >= 0) { return true; } } return false; };
      });
      var rows = checks.length ? this.rows.filter(function (row) { return checks.every(function (c) { return c(row); }); }) : this.rows.slice();
      if (this.sort !== null) {
        var j = this.sort, c = this.cols[j], dir = this.dir;
        rows.sort(function (a, b) {
          var x = a[j], y = b[j];
          if (c.sev) { x = SEV.indexOf(x); y = SEV.indexOf(y); }
          if (x === null || x === undefined) { x = c.n ? -Infinity : ''; }
          if (y === null || y === undefined) { y = c.n ? -Infinity : ''; }
          return (x < y ? -1 : x > y ? 1 : 0) * dir;
        });
      }
      return rows;
    };
    Table.prototype.cell = function (c, v) {
      var td = document.createElement('td');
      if (c.n) { td.className = 'num'; }
      // identifiers (rule ids, host names, keys) never wrap inside a word: "NSG00/6" reads as two
      if (c.id) { td.className = 'ident'; }
      if (v === null || v === undefined) { return td; }
      if (c.long && String(v).length > LONG) {
        // the whole text, folded: the summary is its start, a click shows the rest
        var det = document.createElement('details'), sum = document.createElement('summary');
        sum.textContent = String(v).slice(0, LONG) + '\u2026'; det.appendChild(sum);
        var full = document.createElement('div'); full.textContent = v; det.appendChild(full);
        td.appendChild(det); return td;
      }
      if (c.sev) { td.className = 'sev-' + v; }
      if (c.st) { td.className = 'st-' + v; }
      if (c.link) {
        var a = document.createElement('a'); a.href = v; a.textContent = 'docs'; a.rel = 'noopener'; td.appendChild(a); return td;
      }
      if (c.f) {
        var b = document.createElement('button'); b.className = 'link'; b.textContent = v; b.title = 'show its findings';
        b.addEventListener('click', function () { focusFindings('host=' + quote(v)); }); td.appendChild(b); return td;
      }
      td.textContent = v; return td;
    };
    Table.prototype.render = function (save) {
      var self = this, rows = this.filtered(), pages = Math.max(1, Math.ceil(rows.length / this.size));
      if (this.page >= pages) { this.page = pages - 1; }
      var start = this.page * this.size, shown = rows.slice(start, start + this.size);
      var frag = document.createDocumentFragment();
      shown.forEach(function (row) {
        var tr = document.createElement('tr');
        self.cols.forEach(function (c, j) { tr.appendChild(self.cell(c, row[j])); });
        frag.appendChild(tr);
      });
      this.tbody.textContent = ''; this.tbody.appendChild(frag);
      this.ths.forEach(function (th, j) {
        if (j === self.sort) { th.setAttribute('aria-sort', self.dir > 0 ? 'ascending' : 'descending'); } else { th.removeAttribute('aria-sort'); }
      });
      this.pager.textContent = rows.length ? ('rows ' + (start + 1) + '\u2013' + (start + shown.length) + ' of ' + rows.length +
        (rows.length !== this.rows.length ? ' (filtered from ' + this.rows.length + ')' : '') + ', page ' + (this.page + 1) + '/' + pages)
        : ('no rows match (of ' + this.rows.length + ')');
      this.tbody.parentNode.dataset.rows = String(rows.length);
      if (save) { saveHash(); }
    };
    function quote(v) { return /\s/.test(v) ? '"' + v + '"' : v; }
    function focusFindings(q) {
      var t = TABLES.findings; t.q = q; t.input.value = q; t.page = 0; t.render(true);
      document.getElementById('sec-findings').scrollIntoView();
    }
    function saveHash() {
      var parts = [];
      Object.keys(TABLES).forEach(function (n) {
        var t = TABLES[n];
        if (t.q) { parts.push(n + '.q=' + encodeURIComponent(t.q)); }
        if (t.sort !== null) { parts.push(n + '.sort=' + t.cols[t.sort].k + ':' + (t.dir > 0 ? 'asc' : 'desc')); }
        if (t.page) { parts.push(n + '.page=' + (t.page + 1)); }
      });
      var h = parts.length ? '#' + parts.join('&') : ' ';
      if (window.history && history.replaceState) {
        try { history.replaceState(null, '', h === ' ' ? location.pathname : h); } catch (e) { /* file:// in some browsers */ }
      }
    }
    function loadHash() {
      (location.hash || '').replace(/^#/, '').split('&').forEach(function (p) {
        var m = /^(\w+)\.(q|sort|page)=(.*)$/.exec(p); if (!m || !TABLES[m[1]]) { return; }
        var t = TABLES[m[1]], v = decodeURIComponent(m[3]);
        if (m[2] === 'q') { t.q = v; t.input.value = v; }
        if (m[2] === 'page') { t.page = Math.max(0, (parseInt(v, 10) || 1) - 1); }
        if (m[2] === 'sort') { var s = v.split(':'), j = t.colIndex(s[0]); if (j >= 0) { t.sort = j; t.dir = s[1] === 'desc' ? -1 : 1; } }
      });
    }
    // per-host chart: conntrack entries per network namespace
    function hostChart() {
      var sel = document.getElementById('ct-host'), box = document.getElementById('ct-host-chart');
      if (!sel) { return; }
      var byHost = {};
      D.conntrack.forEach(function (r) { var h = S[r[0]]; (byHost[h] = byHost[h] || []).push(r); });
      Object.keys(byHost).sort().forEach(function (h) { var o = document.createElement('option'); o.value = h; o.textContent = h; sel.appendChild(o); });
      function draw() {
        var rows = (byHost[sel.value] || []).slice().sort(function (a, b) { return b[2] - a[2]; }).slice(0, 40);
        var NS = 'http://www.w3.org/2000/svg', w = 640, lw = 230, bh = 16, h = rows.length * (bh + 4) + 24;
        var max = rows.reduce(function (m, r) { return Math.max(m, r[2], 1); }, 1);
        var svg = document.createElementNS(NS, 'svg'); svg.setAttribute('viewBox', '0 0 ' + w + ' ' + h);
        svg.setAttribute('width', '100%'); svg.setAttribute('style', 'max-width:' + w + 'px');
        svg.setAttribute('role', 'img'); svg.setAttribute('aria-label', 'conntrack entries per network namespace');
        rows.forEach(function (r, i) {
          var y = i * (bh + 4) + 4, bw = Math.max(1, (w - lw - 80) * r[2] / max), use = r[3] ? r[2] / r[3] : 0;
          var t = document.createElementNS(NS, 'text'); t.setAttribute('x', lw - 6); t.setAttribute('y', y + 12);
          t.setAttribute('text-anchor', 'end'); t.textContent = S[r[1]].length > 36 ? S[r[1]].slice(0, 35) + '\u2026' : S[r[1]]; svg.appendChild(t);
          var rect = document.createElementNS(NS, 'rect'); rect.setAttribute('x', lw); rect.setAttribute('y', y);
          rect.setAttribute('width', bw); rect.setAttribute('height', bh);
          rect.setAttribute('fill', use >= 0.8 ? '#c62828' : use >= 0.5 ? '#e69500' : '#26a69a');
          var tip = document.createElementNS(NS, 'title');
          tip.textContent = S[r[1]] + ': ' + r[2] + ' entries' + (r[3] ? ' (' + (100 * use).toFixed(1) + '% of nf_conntrack_max ' + r[3] + ')' : '');
          rect.appendChild(tip); svg.appendChild(rect);
          var v = document.createElementNS(NS, 'text'); v.setAttribute('x', lw + bw + 4); v.setAttribute('y', y + 12);
          v.textContent = String(r[2]); svg.appendChild(v);
        });
        box.textContent = ''; box.appendChild(svg);
      }
      sel.addEventListener('change', draw);
      if (sel.options.length) { draw(); }
    }

    ['rules', 'hosts', 'containers', 'findings'].forEach(function (n) { TABLES[n] = new Table(n); });
    if (TABLES.findings.sort === null) { TABLES.findings.sort = 0; }
    loadHash();
    window.addEventListener('hashchange', function () { loadHash(); Object.keys(TABLES).forEach(function (n) { TABLES[n].render(false); }); });
    Object.keys(TABLES).forEach(function (n) { TABLES[n].render(false); });
    hostChart();
    body.dataset.ready = '1';
  } catch (e) {
    body.dataset.error = String(e && e.message || e);
    var p = document.getElementById('js-error'); if (p) { p.textContent = 'The interactive tables failed: ' + body.dataset.error; }
    throw e;
  }
})();
"""


class _Strings:
    """A string table: each distinct string once in the page, rows hold indices."""

    def __init__(self) -> None:
        self.index: Dict[str, int] = {}
        self.items: List[str] = []

    def __call__(self, value: Any) -> Optional[int]:
        if value is None:
            return None
        text = value if value.__class__ is str else str(value)
        found = self.index.get(text)
        if found is None:
            found = self.index[text] = len(self.items)
            self.items.append(text)
        return found


def _data(model: Mapping[str, Any]) -> Dict[str, Any]:
    s = _Strings()
    rules = [[r["id"], r["name"], SEVERITY_RANK[r["severity"]], r["findings"]["total"], r["findings"]["error"],
              r["findings"]["warning"], r["findings"]["info"], r["hosts"], r["containers"], ", ".join(r["keys"][:8]),
              r["help_uri"]] for r in model["rules"]]
    hosts = []
    for h in model["hosts"]:
        ct = h["conntrack"] or {}
        hosts.append([h["name"], h["status"], h["message"], h["kernel"], h["containers"], h["findings"]["error"],
                      h["findings"]["warning"], h["findings"]["info"], ct.get("total"),
                      round(100 * ct["peak_use"], 2) if ct.get("peak_use") is not None else None, h["gathered_at"]])
    containers = [[s(c["host"]), s(c["label"]), s(c["runtime"]), s(c["image"]),
                   s(", ".join("%s=%s" % kv for kv in sorted(c["labels"].items()))), s(short(c["cmdline"] or "", 300)),
                   c["findings"]["error"], c["findings"]["warning"], c["findings"]["info"], c["conntrack_count"]]
                  for c in model["containers"]]
    findings = [[SEVERITY_RANK[f["severity"]], s(f["rule"]), s(f["host"]), s(finding_where(f)), s(f.get("key")),
                 s(values_text(f.get("values"))), s(clean_text(f.get("message") or "")), s(fix_text(f))]
                for f in model["findings"]]
    conntrack = [[s(r["host"]), s(r["label"]), r["count"], r["max"]] for r in model["conntrack"]]
    return {"strings": s.items, "rules": rules, "hosts": hosts, "containers": containers,
            "findings": findings, "conntrack": conntrack}


def _bar_chart(title: str, rows: Sequence[Tuple[str, float, str, str]], scale: float, unit: str,
               marker: Optional[float] = None) -> str:
    """Horizontal bars: rows of (label, value, tooltip, colour); every text is escaped here."""
    width, label_w, bar_h = 640, 230, 16
    height = len(rows) * (bar_h + 4) + 28
    scale = scale or 1
    # viewBox + width 100%: the chart scales with its column instead of overflowing it
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="100%%" style="max-width:%dpx" '
             'preserveAspectRatio="xMinYMin meet" role="img" aria-label="%s">' % (width, height, width, html_escape(title))]
    span = width - label_w - 90
    for i, (label, value, tip, colour) in enumerate(rows):
        y = i * (bar_h + 4) + 4
        bar_len = max(1.0, span * min(value, scale) / scale)
        parts.append('<text x="%d" y="%d" text-anchor="end">%s</text>' % (label_w - 6, y + 12, html_escape(short(label, 36))))
        parts.append('<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"><title>%s</title></rect>' % (
            label_w, y, bar_len, bar_h, colour, html_escape(tip)))
        parts.append('<text x="%.1f" y="%d">%s</text>' % (label_w + bar_len + 4, y + 12, html_escape(unit % value)))
    if marker is not None and rows:
        x = label_w + span * min(marker, scale) / scale
        parts.append('<line x1="%.1f" y1="0" x2="%.1f" y2="%d" stroke="#c62828" stroke-dasharray="4 3"/>' % (x, x, height - 22))
        parts.append('<text x="%.1f" y="%d" text-anchor="middle">limit</text>' % (x, height - 8))
    parts.append("</svg>")
    return "".join(parts)


def _colour(use: Optional[float]) -> str:
    if use is None:
        return "#26a69a"
    return "#c62828" if use >= 0.8 else "#e69500" if use >= 0.5 else "#26a69a"


def _charts(model: Mapping[str, Any]) -> str:
    hosts = [h for h in model["hosts"] if h["conntrack"]]
    if not hosts:
        return '<p class="note">No conntrack data (nf_conntrack not loaded on any audited host).</p>'
    top_hosts = sorted(hosts, key=lambda h: (-h["conntrack"]["total"], h["name"]))[:CHART_TOP]
    host_rows = [(h["name"], float(h["conntrack"]["total"]),
                  "%s: %d entries in %d network namespaces (one shared table of %s buckets; nf_conntrack_max %s per namespace)" % (
                      h["name"], h["conntrack"]["total"], h["conntrack"]["netns"], h["conntrack"]["buckets"],
                      h["conntrack"]["max"]), _colour(h["conntrack"]["peak_use"])) for h in top_hosts]
    host_scale = max((r[1] for r in host_rows), default=1.0)
    ns = [r for r in model["conntrack"] if r["use"] is not None]
    top_ns = sorted(ns, key=lambda r: (-r["use"], r["host"]))[:CHART_TOP]
    ns_rows = [("%s / %s" % (r["host"], r["label"]), 100.0 * r["use"],
                "%s / %s (netns %s): %d of nf_conntrack_max %d" % (r["host"], r["label"], r["net"], r["count"], r["max"]),
                _colour(r["use"])) for r in top_ns]
    out = ['<div class="charts">']
    out.append('<div class="chart"><h3>Entries per host (top %d)</h3>%s<p class="note">All network namespaces of a host share '
               'one hash table and kernel memory.</p></div>' % (CHART_TOP, _bar_chart(
                   "conntrack entries per host", host_rows, host_scale, "%.0f")))
    out.append('<div class="chart"><h3>Use of nf_conntrack_max per network namespace (top %d)</h3>%s<p class="note">'
               'The kernel checks nf_conntrack_max against each namespace\'s own count; a container cannot raise it.</p></div>' % (
                   CHART_TOP, _bar_chart("nf_conntrack_max use per network namespace", ns_rows, 100.0, "%.1f%%", marker=100.0)))
    out.append('<div class="chart"><h3>Per host: entries per network namespace</h3><p><label>Host '
               '<select id="ct-host"></select></label></p><div id="ct-host-chart"><p class="note">Needs JavaScript.</p></div></div>')
    out.append("</div>")
    return "".join(out)


def _table_section(name: str, title: str, hint: str, quick: Optional[Sequence[Tuple[str, str]]] = None) -> str:
    q = ""
    if quick:
        q = '<select class="quick" aria-label="quick filter">%s</select>' % "".join(
            '<option value="%s">%s</option>' % (html_escape(v), html_escape(l)) for v, l in quick)
    return ('<section id="sec-%s"><h2>%s</h2><div class="tools"><input type="search" placeholder="%s" aria-label="filter %s">%s'
            '<select class="size" aria-label="rows per page"><option>100</option><option>500</option><option>2000</option></select>'
            '<button class="prev" type="button">&#8249; prev</button><button class="next" type="button">next &#8250;</button>'
            '<span class="pager"></span></div><table id="tbl-%s"><thead><tr></tr></thead><tbody></tbody></table></section>') % (
                name, html_escape(title), html_escape(hint), name, q, name)


def render_html(model: Mapping[str, Any], out: IO[str]) -> None:
    s = model["summary"]
    h, f = s["hosts"], s["findings"]
    title = html_escape(model["title"])
    out.write('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n')
    out.write('<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'; '
              'script-src \'unsafe-inline\'; img-src data:; base-uri \'none\'; form-action \'none\'">\n')
    out.write('<meta name="viewport" content="width=device-width, initial-scale=1">\n')
    out.write("<title>%s</title>\n<style>%s</style></head>\n<body>\n" % (title, _CSS))
    out.write("<header><h1>%s</h1><p>Generated %s by %s %s from %s.</p></header>\n<main>\n" % (
        title, html_escape(model["generated_at"]), html_escape(model["generator"]["name"]),
        html_escape(model["generator"]["version"]),
        "the play's host variables" if model["source"] == "play" else "Ansible's fact cache"))
    out.write('<noscript><p class="note">Tables need JavaScript; fleet.md and fleet.json hold the same data.</p></noscript>'
              '<p id="js-error" class="sev-error"></p>\n')
    cards = [("hosts", h["total"], ""), ("ok", h["ok"], "st-ok"), ("unreachable", h["unreachable"], "st-unreachable" if h["unreachable"] else ""),
             ("failed", h["failed"], "st-failed" if h["failed"] else ""), ("containers", s["containers"], ""),
             ("findings", f["total"], ""), ("error", f["error"], "sev-error"), ("warning", f["warning"], "sev-warning"),
             ("info", f["info"], "sev-info")]
    out.write('<section id="summary"><h2>Summary</h2><div class="cards">%s</div></section>\n' % "".join(
        '<div class="card" id="card-%s"><b class="%s">%d</b><span>%s</span></div>' % (label, cls, value, label)
        for label, value, cls in cards))
    not_ok = [row for row in model["hosts"] if row["status"] != "ok"]
    if not_ok:
        out.write('<section id="not-audited"><h2>Hosts not audited</h2><table><thead><tr><th>Host</th><th>Status</th>'
                  '<th>Message</th><th>Last facts</th></tr></thead><tbody>%s</tbody></table></section>\n' % "".join(
                      '<tr><td>%s</td><td class="st-%s">%s</td><td>%s</td><td>%s</td></tr>' % (
                          html_escape(r["name"]), r["status"], r["status"], html_escape(r["message"] or ""),
                          html_escape(r["gathered_at"] or "never")) for r in not_ok))
    if model["problems"]:
        out.write('<section id="problems"><h2>Problems in the input</h2><ul>%s</ul></section>\n' % "".join(
            "<li>%s: %s: %s</li>" % (html_escape(p["host"]), html_escape(p["where"]), html_escape(p["message"]))
            for p in model["problems"]))
    out.write('<section id="conntrack"><h2>Conntrack use</h2>%s</section>\n' % _charts(model))
    out.write(_table_section("rules", "Per rule", "filter: text, severity=error, rule:NSG"))
    out.write(_table_section("hosts", "Per host", "filter: text, status=unreachable, host:web",
                             [("", "all statuses"), ("status=ok", "ok"), ("status=unreachable", "unreachable"), ("status=failed", "failed")]))
    out.write(_table_section("containers", "Per container", "filter: text, host=node1, image:redis, labels:team"))
    out.write(_table_section("findings", "Findings", "filter: text, host=node1, rule=NSG001, key:vm., container:es",
                             [("", "all severities"), ("severity=error", "error"), ("severity=warning", "warning"), ("severity=info", "info")]))
    out.write('</main>\n<script type="application/json" id="nsg-data">')
    out.write(json_for_script(_data(model)))
    out.write("</script>\n<script>%s</script>\n</body></html>\n" % _JS)


def fix_text(finding: Mapping[str, Any]) -> Optional[str]:
    """The Fix cell: where the fix goes, then the name of each remediation task (or the note)."""
    remediation = finding.get("remediation")
    if not isinstance(remediation, Mapping):
        return None
    names = [clean_text(t.get("name")) for t in remediation.get("tasks") or [] if isinstance(t, Mapping) and t.get("name")]
    text = ": ".join(x for x in (clean_text(remediation.get("where")), "; ".join(names) or clean_text(remediation.get("note"))) if x)
    return text or None
