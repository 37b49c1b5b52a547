# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""fleet.md: the fleet model as GitHub-flavoured Markdown.

Every value that comes from facts or findings goes through ``md_escape``: a label such as
``| x | y |`` or a command line ``<script>`` stays text in one table cell.
"""
from __future__ import annotations

from typing import IO, Any, Dict, Iterable, List, Mapping, Sequence

from .render_common import md_code, md_escape, short, values_text
from .report import finding_where, iter_findings_by_host

__all__ = ["render_md", "finding_lines"]

_SEV_MARK = {"error": "error", "warning": "warning", "info": "info"}


def _table(out: IO[str], header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    out.write("| " + " | ".join(header) + " |\n")
    out.write("|" + "|".join("---" for dummy in header) + "|\n")
    for row in rows:
        out.write("| " + " | ".join(row) + " |\n")
    out.write("\n")


def _counts(c: Mapping[str, int]) -> Sequence[str]:
    return [str(c["error"]), str(c["warning"]), str(c["info"])]


def _labels(labels: Mapping[str, Any]) -> str:
    return md_escape(", ".join("%s=%s" % (k, v) for k, v in sorted(labels.items())))


class _LineCounter:
    """A writer that counts the lines written through it (fleet.sarif points at finding rows)."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.lines = 0

    def write(self, text: str) -> int:
        self.lines += text.count("\n")
        return self.out.write(text) if self.out is not None else len(text)


def finding_lines(model: Mapping[str, Any]) -> List[int]:
    """The 1-based line of each of ``model["findings"]`` (in that order) in fleet.md."""
    return render_md(model, None)


def render_md(model: Mapping[str, Any], out: IO[str]) -> List[int]:
    """Write fleet.md to ``out`` (``None``: only count); returns ``finding_lines``."""
    out = _LineCounter(out)  # type: ignore[assignment]
    s = model["summary"]
    h, f = s["hosts"], s["findings"]
    out.write("# %s\n\n" % md_escape(model["title"]))
    out.write("Generated %s by %s %s from %s.\n\n" % (
        md_escape(model["generated_at"]), md_escape(model["generator"]["name"]),
        md_escape(model["generator"]["version"]),
        "the play's host variables" if model["source"] == "play" else "Ansible's fact cache"))

    out.write("## Summary\n\n")
    _table(out, ["Hosts", "ok", "unreachable", "failed", "Containers", "Findings", "error", "warning", "info"],
           [[str(h["total"]), str(h["ok"]), str(h["unreachable"]), str(h["failed"]), str(s["containers"]),
             str(f["total"])] + list(_counts(f))])

    not_ok = [row for row in model["hosts"] if row["status"] != "ok"]
    if not_ok:
        out.write("## Hosts not audited\n\n")
        _table(out, ["Host", "Status", "Message", "Last facts"],
               ([md_escape(r["name"]), r["status"], md_escape(short(r["message"] or "")),
                 md_escape(r["gathered_at"] or "never")] for r in not_ok))

    out.write("## Rules\n\n")
    _table(out, ["Rule", "Name", "Severity", "Findings", "Hosts", "Containers", "Frequent keys"],
           ([md_code(r["id"]), md_escape(r["name"]), r["severity"], str(r["findings"]["total"]),
             str(r["hosts"]), str(r["containers"]), md_escape(", ".join(r["keys"][:5]))]
            for r in model["rules"]))

    out.write("## Hosts\n\n")
    _table(out, ["Host", "Status", "Kernel", "Containers", "error", "warning", "info", "Conntrack (peak netns / max)"],
           ([md_escape(r["name"]), r["status"], md_escape(r["kernel"] or ""), str(r["containers"])]
            + list(_counts(r["findings"]))
            + [("%d / %s" % (r["conntrack"]["peak"], r["conntrack"]["max"])) if r["conntrack"] else ""]
            for r in model["hosts"]))

    out.write("## Containers\n\n")
    if model["containers"]:
        _table(out, ["Host", "Container", "Runtime", "Image", "Labels", "Command line", "error", "warning", "info",
                     "Conntrack"],
               ([md_escape(c["host"]), md_escape(c["label"]), md_escape(c["runtime"] or ""),
                 md_escape(c["image"] or ""), _labels(c["labels"]), md_escape(short(c["cmdline"] or "", 120))]
                + list(_counts(c["findings"])) + ["" if c["conntrack_count"] is None else str(c["conntrack_count"])]
                for c in model["containers"]))
    else:
        out.write("None.\n\n")

    out.write("## Findings\n\n")
    lines: Dict[int, int] = {}
    if not model["findings"]:
        out.write("None.\n\n")
    for host, findings in iter_findings_by_host(model):
        if not findings:
            continue
        out.write("### %s\n\n" % md_escape(host))
        _table(out, ["Severity", "Rule", "Container", "Key", "Values", "Message", "Fix"],
               (_finding_row(x, out, lines) for x in findings))

    if model["problems"]:
        out.write("## Problems in the input\n\n")
        _table(out, ["Host", "Where", "Message"],
               ([md_escape(p["host"]), md_escape(p["where"]), md_escape(p["message"])] for p in model["problems"]))
    return [lines[id(x)] for x in model["findings"]]


def _finding_row(x: Mapping[str, Any], out: _LineCounter, lines: Dict[int, int]) -> Sequence[str]:
    # _table writes each row as soon as it is made, so the next line is this finding's
    lines[id(x)] = out.lines + 1
    return [_SEV_MARK[x["severity"]], md_code(x["rule"]),
            md_escape(finding_where(x)), md_code(x.get("key") or "") if x.get("key") else "",
            md_escape(values_text(x.get("values"))), md_escape(short(x.get("message") or "", 400)),
            md_escape((x.get("remediation") or {}).get("where") or "")]
