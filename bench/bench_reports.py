#!/usr/bin/env python
"""Scale benchmark for the fleet reports: synthetic facts for HOSTS x CONTAINERS, all outputs.

    .venv/bin/python bench/bench_reports.py [--hosts 2000] [--containers 50] [--keep DIR]

Prints, per stage, wall time and the process's peak RSS, the size of each output, and the
ratio of the report time to a baseline measured in the same process: one ``json.dumps`` of the
same input (the cheapest thing any reporter must at least do: read every finding once).
Targets (issue 5): all reports for 2,000 hosts x 50 containers in < 60 s and < 1 GiB peak.
The peak includes the synthetic facts themselves, as Ansible would hold them in hostvars
(measured with VmHWM, reset after the input is built and the baseline is run).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEV = REPO / ".venv" / "dev-collections"
if not (DEV / "ansible_collections" / "nsguard" / "sysctl").exists():
    (DEV / "ansible_collections" / "nsguard").mkdir(parents=True, exist_ok=True)
    (DEV / "ansible_collections" / "nsguard" / "sysctl").symlink_to(REPO)
sys.path.insert(0, str(DEV))
sys.path.insert(0, str(REPO))

from ansible_collections.nsguard.sysctl.plugins.plugin_utils import renderers, report  # noqa: E402
from ansible_collections.nsguard.sysctl.plugins.plugin_utils.atomic import atomic_open  # noqa: E402
from tests.reports.synthetic import make_fleet  # noqa: E402

TARGET_SECONDS = 60.0
TARGET_BYTES = 1 << 30


def peak_rss() -> int:
    """Peak RSS since start, or since the last reset_peak() (VmHWM)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def reset_peak() -> None:
    """Linux >= 4.0: writing 5 to clear_refs resets VmHWM to the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def mib(n: float) -> str:
    return "%.0f MiB" % (n / (1 << 20))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--hosts", type=int, default=2000)
    parser.add_argument("--containers", type=int, default=50)
    parser.add_argument("--unreachable", type=int, default=20)
    parser.add_argument("--keep", help="write the reports here and keep them")
    args = parser.parse_args()

    t0 = time.perf_counter()
    fleet = make_fleet(args.hosts, args.containers, unreachable=args.unreachable, failed=5, hostile=True)
    t_gen = time.perf_counter() - t0
    gc.collect()
    rss_input = peak_rss()
    n_findings = sum(len(e.get("findings") or []) for e in fleet.values())
    print("input: %d hosts x %d containers (+%d unreachable, 5 failed), %d findings; generated in %.1f s, peak RSS %s"
          % (args.hosts, args.containers, args.unreachable, n_findings, t_gen, mib(rss_input)))

    # baseline: serialise the same input once, host by host (no giant string)
    t0 = time.perf_counter()
    baseline_bytes = sum(len(json.dumps(entry, separators=(",", ":"))) for entry in fleet.values())
    t_base = time.perf_counter() - t0
    gc.collect()
    reset_peak()
    print("baseline json.dumps(input): %.2f s, %s" % (t_base, mib(baseline_bytes)))

    dest = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="nsg-bench-reports-"))
    dest.mkdir(parents=True, exist_ok=True)
    try:
        t_all = time.perf_counter()
        t0 = time.perf_counter()
        # what the action does with hostvars: a view of the part of the facts the reports read
        inputs = {h: dict(e, facts=report.trim_facts(e["facts"]) if e.get("facts") else None) for h, e in fleet.items()}
        model = report.build_fleet(inputs)
        t_model = time.perf_counter() - t0
        print("%-12s %6.2f s   peak RSS %s" % ("aggregate", t_model, mib(peak_rss())))
        for fmt, spec in renderers.FORMATS.items():
            filename, render = spec.filename, spec.render
            t0 = time.perf_counter()
            with atomic_open(dest / filename) as out:
                render(model, out)
            elapsed = time.perf_counter() - t0
            print("%-12s %6.2f s   peak RSS %s   %s %s" % (fmt, elapsed, mib(peak_rss()), filename,
                                                           mib(os.path.getsize(dest / filename))))
        total = time.perf_counter() - t_all
        peak = peak_rss()
        print(report.summary_line(model))
        print("TOTAL reports %.1f s (target < %.0f s), ratio to baseline %.1fx; peak RSS %s (target < %s), "
              "of which input %s" % (total, TARGET_SECONDS, total / t_base if t_base else float("nan"), mib(peak),
                                     mib(TARGET_BYTES), mib(rss_input)))
        ok = total < TARGET_SECONDS and peak < TARGET_BYTES
        print("RESULT", "within targets" if ok else "OVER TARGET")
        return 0 if ok else 1
    finally:
        if not args.keep:
            shutil.rmtree(dest, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
