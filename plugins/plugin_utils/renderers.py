# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The report formats and how a set of them is written.

:data:`FORMATS` is the registry: format name -> the file it writes in the report directory and
the function that renders the fleet model (``report.build_fleet``) into it. The dependencies go
one way: every ``render_*`` module reads the model with ``report``'s helpers, this module
imports the renderers, and ``report`` imports neither (a format is added here, with one row).

Plain Python (no Ansible import).
"""
from __future__ import annotations

import os
from types import ModuleType
from typing import IO, Any, Callable, Dict, Iterable, Mapping, NamedTuple, Tuple

from . import render_html, render_json, render_junit, render_md, render_remediation, render_sarif
from .atomic import StagedSet, remove_stale

__all__ = ["Format", "FORMATS", "write_reports"]


class Format(NamedTuple):
    filename: str         # in the report directory
    module: ModuleType    # the renderer's module, imported above
    function: str         # its ``(model, text stream)`` function

    @property
    def render(self) -> Callable[[Mapping[str, Any], IO[str]], Any]:
        # looked up when called, so a renderer replaced in its module (a test's slow renderer)
        # is the one used
        return getattr(self.module, self.function)


FORMATS: Dict[str, Format] = {
    "json": Format("fleet.json", render_json, "render_json"),
    "md": Format("fleet.md", render_md, "render_md"),
    "html": Format("fleet.html", render_html, "render_html"),
    "sarif": Format("fleet.sarif", render_sarif, "render_sarif"),
    "junit": Format("fleet.junit.xml", render_junit, "render_junit"),
    "remediation": Format("remediation.yml", render_remediation, "render_remediation"),
}


def write_reports(model: Mapping[str, Any], dest: str, formats: Iterable[str] = tuple(FORMATS)
                  ) -> Tuple[Dict[str, str], Dict[str, str]]:
    """Render each format into ``dest``, as one set: every file is rendered under a temporary
    name first and all are renamed into place at the end (atomic.StagedSet), so a run killed
    while rendering leaves the previous set whole, and the temporary files a killed run left are
    removed first. A renderer that fails leaves its previous file in place and does not stop
    the others. Returns ({format: path}, {format: error})."""
    written: Dict[str, str] = {}
    errors: Dict[str, str] = {}
    try:
        os.makedirs(dest, exist_ok=True)
    except OSError as exc:
        return written, {fmt: "cannot create the report directory %s: %s" % (dest, exc) for fmt in formats}
    remove_stale(dest, [spec.filename for spec in FORMATS.values()])
    staged = StagedSet()
    try:
        for fmt in formats:
            if fmt not in FORMATS:
                errors[fmt] = "unknown format %r (known: %s)" % (fmt, ", ".join(FORMATS))
                continue
            path = os.path.join(dest, FORMATS[fmt].filename)
            try:
                with staged.open(path) as out:
                    FORMATS[fmt].render(model, out)
            except Exception as exc:  # one broken renderer must not cost the other reports
                errors[fmt] = "%s: %s: %s" % (path, type(exc).__name__, exc)
                continue
            written[fmt] = path
        staged.commit()
    except BaseException:
        staged.discard()
        raise
    return written, errors
