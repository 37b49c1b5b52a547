"""The whole audit over many inventory hosts completes with a correct report (issue 7 part 5).

A smaller run of bench/bench_audit_load.py's procedure (the 200-host figures are the bench's):
40 localhost aliases, forks 20, ``nsguard.sysctl.audit`` with a jsonfile fact cache, then
``nsguard.sysctl.report`` from that cache. Asserted: both runs succeed, every host is in both
fleet.json files with status ok, every host has the same findings (all are this machine;
namespace sets that other tests made or removed during the run are left out of the comparison),
the two reports agree, and the fact cache has one file per host. No timing is asserted.
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.root, pytest.mark.slow]

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_audit_load.py"
HOSTS = 40


def _bench():
    spec = importlib.util.spec_from_file_location("bench_audit_load", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module   # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(os.geteuid() != 0, reason="the facts module enters namespace sets: needs root")
def test_audit_of_40_hosts_completes_with_every_host_and_the_same_findings(tmp_path):
    bench = _bench()
    workdir = bench.make_workdir(tmp_path / "load", HOSTS, 20)
    hosts = ["h%03d" % i for i in range(HOSTS)]
    audit = bench.run_audit(workdir)
    assert audit.rc == 0, audit.stdout[-3000:] + audit.stderr[-2000:]
    assert audit.extra["fact_cache_files"] == HOSTS
    # 20 gathers ran side by side on this one machine: none took another's probe namespaces or
    # readers (processes named nsguard-sysctl, forked by a facts module) for a container
    phantoms = []
    for cached in sorted((workdir / "facts").iterdir()):
        facts = json.loads(json.loads(cached.read_text())["__payload__"])["nsguard_sysctl"]
        for nset in facts["namespace_sets"]:
            init = nset.get("init") or {}
            if init.get("comm") == "nsguard-sysctl" or "AnsiballZ_sysctl_facts" in (init.get("cmdline") or ""):
                phantoms.append((cached.name, nset["id"], init))
    assert phantoms == []
    report = bench.run_report(workdir)
    assert report.rc == 0, report.stdout[-3000:] + report.stderr[-2000:]
    models = {}
    for name in ("reports", "cache-reports"):
        fleet = workdir / name / "fleet.json"
        problems, facts = bench.check_report(fleet, hosts)
        assert not problems, (name, problems)
        assert facts["hosts"] == HOSTS and facts["findings_per_host"] > 0
        models[name] = json.loads(fleet.read_text())
        assert (workdir / name / "remediation.yml").exists()

    # the report rebuilt from the cache says what the audit's own report said
    def per_host(model):
        return {(f["host"], f["rule"], f["set_id"], f["key"]) for f in model["findings"]}
    assert per_host(models["reports"]) == per_host(models["cache-reports"])
    assert models["reports"]["summary"]["hosts"] == models["cache-reports"]["summary"]["hosts"]
    # the memory sampler saw the controller and its forks
    assert audit.peaks.samples > 0 and audit.peaks.controller_procs > 1
