"""The program the harness runs inside a booted guest (and, with ``--host``, on this machine).

1. The real facts module, ``plugins/modules/sysctl_facts.py``, run as Ansible runs a module on a
   target (a Python process given its arguments file; ``containers: false``, probe on): the
   host's keys, modes and the non-destructive probe, exactly what ``sysctl_classify`` reads.
2. The ground-truth measurement of tests/integration/groundtruth (``measure.measure``), every
   host write restored through its ledger. In a throwaway guest the "host" is the guest.
3. ``truth.build_table`` makes the table; it is written gzip'd and base64'd between markers to
   ``--out`` (the guest's second serial port, a file on the qemu side) with its sha256.

Runs with the standard library plus ``ansible.module_utils`` (for the module) only.
"""
from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COLLECTION = Path(__file__).absolute().parents[2]   # .../ansible_collections/nsguard/sysctl (links kept)


def _collections_root() -> Path:
    """The directory holding ``ansible_collections/``: above this file in a guest, else the first
    entry of ANSIBLE_COLLECTIONS_PATH (the checkout's dev link)."""
    for parent in COLLECTION.parents:
        if parent.name == "ansible_collections":
            return parent.parent
    for entry in os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep):
        if entry and (Path(entry) / "ansible_collections" / "nsguard" / "sysctl").exists():
            return Path(entry)
    raise SystemExit("nsguard.sysctl is not importable: set ANSIBLE_COLLECTIONS_PATH (make dev-link)")


ROOT = _collections_root()
for entry in (str(COLLECTION), str(ROOT)):
    if entry not in sys.path:
        sys.path.insert(0, entry)

BEGIN, END = "NSGUARD-TRUTH-BEGIN", "NSGUARD-TRUTH-END"
MODULE_ARGS = {"containers": False, "probe": True}


def run_facts_module(timeout: float = 900.0) -> dict:
    """``ansible_facts.nsguard_sysctl`` from the real module run as a target process."""
    module = COLLECTION / "plugins" / "modules" / "sysctl_facts.py"
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": MODULE_ARGS}, handle)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    try:
        proc = subprocess.run([sys.executable, str(module), handle.name], capture_output=True, text=True,
                              timeout=timeout, env=env)
    finally:
        os.unlink(handle.name)
    try:
        result = json.loads(proc.stdout)
    except ValueError as exc:
        raise RuntimeError(f"sysctl_facts printed no JSON (rc {proc.returncode}): {proc.stdout[-2000:]} "
                           f"{proc.stderr[-2000:]}") from exc
    if result.get("failed"):
        raise RuntimeError(f"sysctl_facts failed: {result.get('msg')}")
    return result["ansible_facts"]["nsguard_sysctl"]


def collect(meta: dict, host: bool) -> dict:
    from tests.integration.groundtruth.measure import HostLedger, host_lock, measure
    from tests.kernels import truth

    started = time.monotonic()
    facts = run_facts_module()
    facts_s = time.monotonic() - started
    ledger = HostLedger()
    with host_lock():
        try:
            gt = measure(ledger)
        finally:
            ledger.restore()
    if ledger.restore_problems:
        raise RuntimeError(f"host values not restored: {ledger.restore_problems}")
    timing = {"facts_s": round(facts_s, 2), "measure_s": round(gt.duration_s, 2),
              "guest_total_s": round(time.monotonic() - started, 2)}
    if not host:
        with open("/proc/uptime") as handle:
            timing["uptime_at_end_s"] = float(handle.read().split()[0])
    return truth.build_table(gt, facts, dict(meta, timing=timing, where="host" if host else "qemu guest"))


def emit(table: dict, out) -> None:
    raw = json.dumps(table, sort_keys=True).encode()
    blob = base64.b64encode(gzip.compress(raw, 9)).decode()
    out.write(f"\n{BEGIN} sha256={hashlib.sha256(raw).hexdigest()} bytes={len(raw)}\n")
    for i in range(0, len(blob), 76):
        out.write(blob[i:i + 76] + "\n")
    out.write(f"{END}\n")
    out.flush()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="-", help="where the table goes (a serial port in a guest)")
    parser.add_argument("--meta", default="{}", help="JSON merged into the table's 'harness' section")
    parser.add_argument("--host", action="store_true", help="measure the running kernel of this machine")
    args = parser.parse_args(argv)
    table = collect(json.loads(args.meta), args.host)
    if args.out == "-":
        emit(table, sys.stdout)
    else:
        with open(args.out, "w") as out:
            emit(table, out)
    print(f"NSGUARD-GUEST-DONE keys={len(table['keys'])} timing={json.dumps(table['harness']['timing'])}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
