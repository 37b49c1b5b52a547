"""Says at the end of the run which per-kernel truth tables the classifier was checked against."""
from __future__ import annotations

from tests.kernels import truth


def pytest_terminal_summary(terminalreporter) -> None:
    if not any(r.nodeid.startswith("tests/kernels/test_kernel_truth.py") for rs in terminalreporter.stats.values() for r in rs
               if hasattr(r, "nodeid")):
        return   # the table checks did not run in this session
    tables = truth.load_tables()
    names = ", ".join(f"{truth.series_of(t['kernel'])} ({t['kernel']}"
                      + (f", {t['package']['package']} {t['package']['version']})" if t.get("package") else ", this machine)")
                      for t in tables)
    terminalreporter.write_line(f"kernel truth tables checked: {names}")
