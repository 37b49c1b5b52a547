"""The committed runtime acceptance tables match what every runtime here does now.

One run of the harness (tests/integration/runtime_acceptance/measure.py: a private dockerd and
podman storage, every case on every path, each container removed after its case, the host
restored) is compared, row by row, with rules/knowledge/runtime-acceptance/*.json: accepted or
not, the stage, the message template. A runtime that cannot start here is skipped with the
harness's reason; a runtime whose live version has no committed table is skipped too (run
``make runtime-acceptance`` to add one).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.integration.runtime_acceptance import measure as ms

pytestmark = [pytest.mark.root, pytest.mark.slow]
RUNTIMES = ("docker-api", "docker-cli", "podman-cli", "podman-api", "podman-crun", "runc", "crun", "containerd", "lxc")


@pytest.fixture(scope="module")
def live():
    if os.geteuid() != 0:
        pytest.skip("the runtime acceptance harness needs root")
    workdir = Path(tempfile.mkdtemp(prefix="nsg-acc-", dir="/tmp"))
    try:
        yield ms.measure(workdir=workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def committed(runtime):
    return {json.loads(p.read_text())["version_short"]: json.loads(p.read_text())
            for p in ms.DEFAULT_OUT.glob("%s-*.json" % runtime)}


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_table_matches_live_behaviour(live, runtime):
    if runtime in live["skipped"]:
        pytest.skip("%s cannot run here: %s" % (runtime, live["skipped"][runtime]))
    tables = [t for t in live["tables"] if t["runtime"] == runtime]
    assert tables, "the harness produced no %s table and gave no reason" % runtime
    known = committed(runtime)
    compared = 0
    for table in tables:
        if table["version_short"] not in known:
            pytest.skip("%s %s has no committed table (make runtime-acceptance)" % (runtime, table["version_short"]))
        want = {(r["key"], r["mode"]): r for r in known[table["version_short"]]["results"]}
        for row in table["results"]:
            assert not row.get("host_changed"), (row["key"], row["mode"], row["host_changed"])
            old = want.get((row["key"], row["mode"]))
            assert old is not None, "case %s/%s is not in the committed table" % (row["key"], row["mode"])
            assert (row["accepted"], row["stage"], row["template"]) == (old["accepted"], old["stage"], old["template"]), (
                row["key"], row["mode"], row["message"])
            if row["accepted"] and row["mode"] == "private" and "/" not in row["key"]:
                # Accepted means applied: the container's namespace has the value asked for.
                assert row["observed"] == row["value"], (row["key"], row["observed"], row["value"])
            compared += 1
        assert len(table["results"]) == len(want)
    assert compared


def test_the_host_is_as_before(live):
    """Everything the runtimes left was undone by the harness (what it did is in 'restored')."""
    assert all(not r.startswith("left ") for r in live["restored"]), live["restored"]
