#!/usr/bin/env python3
"""Write the sysctl names this host's kernel has: rules/knowledge/key-inventory/linux-<release>.txt.

    python scripts/gen_key_inventory.py [--out DIR]

Read-only: it lists /proc/sys (names only, no values). Interface names under
net.{ipv4,ipv6,mpls}.{conf,neigh} are written as ``*`` (their keys are the same for every
device). The static judge calls a key *unknown* only when its directory is in an inventory but
the key is in none and no knowledge entry names it (a typo such as net.ipv4.foo_bar), so a key
of a module this kernel did not build (net.bridge.*, net.ipv4.vs.*) is never called unknown.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEVICE_DIRS = {("net", p, d) for p in ("ipv4", "ipv6", "mpls") for d in ("conf", "neigh")}


def names(root: str = "/proc/sys") -> list:
    out = set()
    for directory, dirs, files in os.walk(root):
        rel = Path(directory).relative_to(root).parts
        for name in files:
            parts = list(rel) + [name]
            if len(parts) >= 4 and tuple(parts[:3]) in DEVICE_DIRS:
                parts[3] = "*"
            # sysctl(8)'s dotted name: a '.' inside one component becomes '/'.
            out.add(".".join(p.replace(".", "/") for p in parts))
    return sorted(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "rules" / "knowledge" / "key-inventory")
    args = parser.parse_args(argv)
    release = platform.release()
    keys = names()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / ("linux-%s.txt" % release)
    header = ["# sysctl names of Linux %s (%d), listed from /proc/sys on %s by scripts/gen_key_inventory.py"
              % (release, len(keys), datetime.date.today().isoformat()),
              "# kernel: %s" % release]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(header + keys) + "\n")
    os.replace(tmp, path)
    print("wrote %s (%d keys)" % (path, len(keys)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
