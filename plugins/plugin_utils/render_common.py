# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Escaping and small formatting helpers shared by the fleet renderers.

Everything a tenant controls (container names, labels, images, command lines, and anything a
finding message quotes from them) passes through one of these before it reaches HTML or
Markdown. They are deliberately strict: the reports are read by people with privileges on
every host, so a label that renders as markup or script would be an escalation.
"""
from __future__ import annotations

import functools
import html
import json
import re
from typing import Any, Mapping, Optional

__all__ = ["clean_text", "md_escape", "md_code", "html_escape", "json_for_script", "values_text", "short"]

# C0/C1 controls (incl. ESC, so no terminal escapes either) except tab; newlines become spaces
# so a tenant string can never start a new Markdown block or table row. Also every code point
# XML 1.0 forbids (lone surrogates, U+FFFE, U+FFFF; section 2.2 "Char"): a comm set with
# prctl(PR_SET_NAME) to bytes that decode to U+FFFF made the whole fleet.junit.xml unparseable.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")
_NEWLINE = re.compile(r"\r\n|\r|\n")
# CommonMark: any ASCII punctuation may be backslash-escaped; these are the ones that start
# or end inline constructs (incl. | for GFM table cells, ~ for strikethrough). Block starts
# (#, -, 1.) need no escape: tenant text never starts a line (newlines are removed and every
# value follows a fixed prefix or a cell separator).
_MD_PUNCT = re.compile(r"([\\`*_{}\[\]()!|~$])")
# GFM autolinks ("www.x", "http://x") would turn tenant text into links.
_AUTOLINK = re.compile(r"(?i)(www)\.|:(//)")


def clean_text(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():
        # no newline, control, separator, surrogate or non-character (every one of them is
        # unprintable): most text of a report, kept as it is without two regex passes
        return text
    text = _NEWLINE.sub(" ", text)
    return _CONTROL.sub("\ufffd", text)


def md_escape(value: Any) -> str:
    """Text for a Markdown paragraph or a GFM table cell: no markup, no HTML, no autolink."""
    # a fleet repeats the same keys, rule names and labels thousands of times: escaped once each
    return _md_escape(value if type(value) is str else clean_text(value))


@functools.lru_cache(maxsize=1 << 16)
def _md_escape(value: str) -> str:
    text = _MD_PUNCT.sub(r"\\\1", clean_text(value))
    text = _AUTOLINK.sub(lambda m: m.group(1) + "\\." if m.group(1) else ":\\/\\/", text)
    # HTML last, so the backslashes above never touch the entities; GFM turns &lt; back into <
    # as text, never as a tag.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def md_code(value: Any) -> str:
    """Short identifiers (keys, rule ids) as escaped text in a code-like span without backticks.

    A real code span cannot hold a tenant string safely inside a table (a ``|`` still splits
    the cell in GFM), so this is ``md_escape`` wrapped in ``<code>`` - HTML that GFM keeps.
    """
    return "<code>%s</code>" % md_escape(value)


def html_escape(value: Any) -> str:
    return html.escape(clean_text(value), quote=True)


def json_for_script(value: Any) -> str:
    """JSON that is safe inside <script type="application/json">: no "</script>", no "<!--",
    and no U+2028/9 (json.dumps escapes those only with ensure_ascii)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def values_text(values: Optional[Mapping[str, Any]]) -> str:
    """A finding's values mapping as one short line: host=65530 container=65530 requested=262144."""
    if not isinstance(values, Mapping):
        return ""
    return " ".join("%s=%s" % (k, clean_text(v)) for k, v in values.items() if v is not None)


def short(value: Any, limit: int = 200) -> str:
    text = clean_text(value)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
