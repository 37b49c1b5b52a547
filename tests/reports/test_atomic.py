"""Atomic writes: a failed or killed writer leaves the previous report whole."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from ansible_collections.nsguard.sysctl.plugins.plugin_utils import renderers, report
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.atomic import atomic_open, atomic_write
from tests.reports.helpers import REPO
from tests.reports.synthetic import make_fleet


def _leftovers(directory):
    return [p for p in os.listdir(directory) if p.endswith(".tmp")]


def test_atomic_write_replaces_and_keeps_mode(tmp_path):
    target = tmp_path / "fleet.json"
    atomic_write(target, "old\n")
    atomic_write(target, b"new\n")
    assert target.read_text() == "new\n"
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask
    assert not _leftovers(tmp_path)


def test_exception_mid_write_keeps_previous(tmp_path):
    target = tmp_path / "fleet.md"
    target.write_text("previous report\n")
    with pytest.raises(RuntimeError):
        with atomic_open(target) as out:
            out.write("half of a new rep")
            raise RuntimeError("renderer crashed")
    assert target.read_text() == "previous report\n"
    assert not _leftovers(tmp_path)


def test_failing_renderer_keeps_previous_file_and_writes_the_others(tmp_path):
    good = report.build_fleet(make_fleet(1, 2))
    written, errors = renderers.write_reports(good, str(tmp_path))
    assert not errors
    before = {p: (tmp_path / p).read_bytes() for p in os.listdir(tmp_path)}
    broken = dict(good, rules=[{"id": "X"}])  # a rule row without its fields: some renderers raise
    written, errors = renderers.write_reports(broken, str(tmp_path))
    assert errors, "the broken model should break at least one renderer"
    for fmt, message in errors.items():
        name = renderers.FORMATS[fmt][0]
        assert name in message
        assert (tmp_path / name).read_bytes() == before[name]  # previous report, whole
    assert not _leftovers(tmp_path)


def test_killed_writer_leaves_previous_report(tmp_path):
    """SIGKILL a real process in the middle of writing a large report."""
    target = tmp_path / "fleet.json"
    renderers.write_reports(report.build_fleet(make_fleet(2, 2)), str(tmp_path), ["json"])
    previous = target.read_bytes()
    script = textwrap.dedent("""
        import sys, time
        sys.path.insert(0, %r)
        from ansible_collections.nsguard.sysctl.plugins.plugin_utils.atomic import atomic_open
        with atomic_open(%r) as out:
            out.write('{"partial": [' + '1,' * 200000)
            out.flush()
            print("writing", flush=True)
            time.sleep(60)
            out.write('1]}')
    """) % (str(REPO / ".venv" / "dev-collections"), str(target))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        temps = _leftovers(tmp_path)
        assert len(temps) == 1 and os.path.getsize(tmp_path / temps[0]) > 100000  # the half-written temp file
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert target.read_bytes() == previous
    # the next run replaces the report; the stale temp file is never read
    renderers.write_reports(report.build_fleet(make_fleet(1, 1)), str(tmp_path), ["json"])
    assert target.read_bytes() != previous


def test_killed_report_run_leaves_the_previous_set_whole(tmp_path):
    """SIGKILL a real process that is writing the whole set (issue 11): until every file is
    rendered nothing is renamed, so the directory holds one generation, and the next run leaves
    no temporary file behind."""
    first = report.build_fleet(make_fleet(2, 2), generated_at="2026-01-01T00:00:00Z")
    renderers.write_reports(first, str(tmp_path))
    previous = {p: (tmp_path / p).read_bytes() for p in os.listdir(tmp_path)}
    script = textwrap.dedent("""
        import sys, time
        sys.path.insert(0, %r)
        sys.path.insert(0, %r)
        from ansible_collections.nsguard.sysctl.plugins.plugin_utils import render_sarif, renderers, report
        from tests.reports.synthetic import make_fleet
        real = render_sarif.render_sarif
        def slow(model, out):     # the set's fourth file: json, md and html are staged by now
            real(model, out)
            out.flush()
            print("rendering", flush=True)
            time.sleep(60)
        render_sarif.render_sarif = slow
        renderers.write_reports(report.build_fleet(make_fleet(3, 3), generated_at="2026-02-02T00:00:00Z"), %r)
    """) % (str(REPO / ".venv" / "dev-collections"), str(REPO), str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "rendering"
        assert len(_leftovers(tmp_path)) == 4        # json, md, html and the sarif in progress
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    # one generation: every file exactly as the first run wrote it
    assert {p: (tmp_path / p).read_bytes() for p in os.listdir(tmp_path) if not p.endswith(".tmp")} == previous
    third = report.build_fleet(make_fleet(1, 1), generated_at="2026-03-03T00:00:00Z")
    written, errors = renderers.write_reports(third, str(tmp_path))
    assert not errors and not _leftovers(tmp_path)
    assert all("2026-03-03" in (tmp_path / renderers.FORMATS[f][0]).read_text() for f in ("json", "md", "html", "sarif"))
