"""The classifier and the static judge against every committed per-kernel truth table.

Tables are made by the harness (scripts/kernel-truth.py, ``make kernel-truth``) on the real
kernel; this test reads them and runs the real ``sysctl_classify`` on each table's own facts.
Re-measuring is not part of ``make test``: it boots each kernel in qemu (TCG), about a minute
per kernel on one core (docs/kernel-truth.md).
"""
from __future__ import annotations

import pytest

from ansible_collections.nsguard.sysctl.plugins.plugin_utils.knowledge import load_knowledge
from tests.kernels import truth

TABLES = truth.load_tables()
EXPECTED = ("6.1", "6.12", "6.18")
FLOOR = "4.18"   # the static judge's default kernel floor


@pytest.fixture(scope="module")
def kb():
    return load_knowledge()


def test_tables_present():
    have = sorted(truth.series_of(t["kernel"]) for t in TABLES)
    missing = [s for s in EXPECTED if s not in have]
    assert "6.18" in have, have
    if missing:
        pytest.skip(f"tables checked: {have}; not yet measured: {missing} (make kernel-truth needs qemu and "
                    "Debian's kernel packages)")


@pytest.mark.parametrize("table", TABLES, ids=[t["kernel"] for t in TABLES])
def test_table_was_made_by_the_harness(table):
    harness = table["harness"]
    assert harness["made_by"] == "scripts/kernel-truth.py"
    if table["package"] is None:
        assert harness["where"] == "host"
        return
    # A guest table names the exact Debian package and what the guest's kernel said it was.
    pkg = table["package"]
    assert pkg["package"].startswith("linux-image-") and pkg["version"] and pkg["release"] == table["kernel"]
    assert harness["where"] == "qemu guest" and "tcg" in harness["qemu"]
    assert table["facts"]["host"]["kernel"]["release"] == table["kernel"]
    assert table["measurement"]["untested"] <= 0.02 * table["measurement"]["keys"]


@pytest.mark.parametrize("table", TABLES, ids=[t["kernel"] for t in TABLES])
def test_classifier_agrees_with_table(kb, table):
    result = truth.classifier_score(kb, table)
    assert result.compared >= 0.9 * len(table["keys"])
    assert not result.not_in_facts, result.not_in_facts[:20]
    assert result.disagreements == [], result.disagreements[:20]


@pytest.mark.parametrize("table", TABLES, ids=[t["kernel"] for t in TABLES])
def test_static_judge_agrees_with_table(kb, table):
    # Every floor a user may set that this kernel is at or above: the default, each older
    # measured kernel, and this one.
    floors = [FLOOR] + [t["kernel"] for t in TABLES if truth.series_key(t["kernel"]) <= truth.series_key(table["kernel"])]
    for floor in floors:
        assert truth.judge_disagreements(kb, table, floor) == [], floor


def test_no_gate_contradicted_by_a_table(kb):
    rows = truth.gate_coverage(kb, TABLES)
    assert [r for r in rows if r["contradicted"]] == []
    # The gates a table on each side measures (6.1 and 6.12 before, 6.18 after), when all are there.
    both = {r["entry"] for r in rows if r["before"] and r["after"]}
    if {"6.1", "6.12"} <= {truth.series_of(t["kernel"]) for t in TABLES}:
        assert {"pid-max", "net-core-rmem-wmem", "net-core-optmem-max", "net-core-tstamp-allow-data"} <= both, both
