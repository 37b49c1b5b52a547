#!/usr/bin/env python
"""Measure the kernel truth tables (tests/kernels/truth/<series>.json).

    python scripts/kernel-truth.py host          # this machine's running kernel (root)
    python scripts/kernel-truth.py 6.1 6.12      # Debian's kernels booted in qemu (TCG)

Run with the test venv's python and ANSIBLE_COLLECTIONS_PATH at the dev link (``make
kernel-truth`` does both). A guest kernel: the Debian package is fetched and unpacked
(tests/kernels/packages.py), an initramfs is built (tests/kernels/initramfs.py), the guest
boots under TCG and runs tests/kernels/guest.py, and its table is written here. Every table
names the package version, the date and the times it took.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / ".venv" / "dev-collections"))   # the collection (make dev-link)

from tests.kernels import boot, guest, initramfs, packages, truth  # noqa: E402

WORK = packages.CACHE / "work"


def _harness(**extra) -> dict:
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    # The code that measured is the commit only when none of it is changed: the collection's code,
    # the tests (the measurement and this harness; the tables are the output) and the scripts.
    # Docs and rules/ do not go into a guest.
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--", "plugins", "tests", "scripts",
                            "Makefile", ":!tests/kernels/truth"], capture_output=True, text=True).stdout.strip()
    commit = (head.stdout.strip() + ("+changes" if dirty else "")) or None
    return dict({"measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "made_by": "scripts/kernel-truth.py", "commit": commit}, **extra)


def measure_host() -> Path:
    table = guest.collect(_harness(package=None, method="the running kernel of this machine, measured on it"), host=True)
    return truth.write_table(table)


def measure_guest(series: str, offline: bool, limit_s: int) -> Path:
    kp = packages.fetch(series, offline=offline)
    work = WORK / kp.release
    initrd = work / "initrd.gz"
    started = time.monotonic()
    meta = _harness(package=kp.as_dict(), method="Debian kernel booted in qemu (TCG), measured inside the guest")
    built = initramfs.build(initrd, kp.modules, kp.release, guest_args="--meta " + _shell_quote(json.dumps(meta)))
    build_s = time.monotonic() - started
    run = boot.boot(kp.vmlinuz, initrd, work, limit_s=limit_s)
    (work / "console.txt").write_text(run.console)
    failed = [line.split(None, 1)[1] for line in run.console.splitlines() if line.startswith("NSGUARD-INSMOD-FAILED ")]
    if failed:
        # a module that did not load takes its keys out of the table: that is not this kernel's truth
        raise boot.BootError(f"modules did not load in the guest: {', '.join(failed)} (console: {work / 'console.txt'})")
    table = truth.parse_output(run.data)
    if table["kernel"] != kp.release:
        raise SystemExit(f"the guest ran {table['kernel']}, not {kp.release}")
    table["harness"]["timing"].update({
        "initramfs_build_s": round(build_s, 1), "qemu_wall_s": round(run.wall_s, 1),
        "booted_at_uptime_s": run.marker_uptime("NSGUARD-BOOTED"),
        "modules_loaded_at_uptime_s": run.marker_uptime("NSGUARD-MODULES-LOADED")})
    table["harness"].update({"qemu": run.command[1:], "initramfs": built})
    return truth.write_table(table)


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kernels", nargs="+", help="'host' or a Debian series: " + ", ".join(packages.SERIES))
    parser.add_argument("--offline", action="store_true", help="use a cached .deb, do not ask Debian's archive")
    parser.add_argument("--limit", type=int, default=1500, help="seconds a guest may run (default 1500)")
    args = parser.parse_args(argv)
    status = 0
    for name in args.kernels:
        started = time.monotonic()
        try:
            path = measure_host() if name == "host" else measure_guest(name, args.offline, args.limit)
        except (packages.PackageError, boot.BootError, initramfs.BuildError, truth.TableError) as exc:
            print(f"{name}: not measured: {exc}", file=sys.stderr)
            status = 1
            continue
        print(f"{name}: wrote {path.relative_to(REPO)} in {time.monotonic() - started:.1f} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
