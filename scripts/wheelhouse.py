#!/usr/bin/env python
"""Keep a local wheelhouse of what the project's venv installed, for set-ups without PyPI.

The package registry is the only network the project's machines have, and when it does not
answer, ``make test`` in a fresh clone cannot build its ``.venv``. After every successful
install the Makefile calls this script, which repacks each distribution installed in the
running interpreter's environment into a wheel (its files as listed in the ``RECORD``, with
its ``.dist-info``) under ``WHEELHOUSE``; the next install passes ``--find-links WHEELHOUSE``,
so pip finds the pinned versions there when the index is unreachable. Only pure repacking:
nothing is downloaded or built.

Usage: python scripts/wheelhouse.py WHEELHOUSE
"""
from __future__ import annotations

import base64
import hashlib
import os
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path


def wheel_tag(dist: metadata.Distribution) -> str:
    """The dist's ``Tag`` lines of its WHEEL file as one compressed tag set (``py2.py3-none-any``
    for a universal wheel: the first tag alone, ``py2-none-any``, is one pip on Python 3 refuses);
    ``py3-none-any`` when it has none."""
    text = dist.read_text("WHEEL") or ""
    tags = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Tag:")]
    if not tags:
        return "py3-none-any"
    parts = [t.split("-") for t in tags if t.count("-") == 2]
    if len(parts) != len(tags):
        return tags[0]
    return "-".join(".".join(dict.fromkeys(p[i] for p in parts)) for i in range(3))


def repack(dist: metadata.Distribution, dest: Path) -> Path | None:
    name = dist.metadata["Name"]
    if not name or not dist.files:
        return None
    safe = name.replace("-", "_").replace(".", "_")
    target = dest / f"{safe}-{dist.version}-{wheel_tag(dist)}.whl"
    if target.exists():
        return target
    base = Path(dist.locate_file(""))
    records = []
    fd, tmp = tempfile.mkstemp(dir=dest, suffix=".tmp")
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            record_name = None
            for item in dist.files:
                rel = str(item)
                if rel.startswith("..") or "__pycache__" in rel or rel.endswith((".pyc", "INSTALLER", "direct_url.json")):
                    continue  # scripts pip makes from entry points, caches, installer marks
                if rel.endswith(".dist-info/RECORD"):
                    record_name = rel
                    continue
                path = base / rel
                if not path.is_file():
                    continue
                data = path.read_bytes()
                archive.writestr(rel, data)
                digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                records.append(f"{rel},sha256={digest},{len(data)}")
            if record_name is None:
                raise ValueError(f"{name} has no RECORD")
            records.append(f"{record_name},,")
            archive.writestr(record_name, "\n".join(records) + "\n")
        os.replace(tmp, target)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        os.unlink(tmp)
        print(f"wheelhouse: skipped {name}: {exc}", file=sys.stderr)
        return None
    return target


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    dest = Path(argv[1])
    dest.mkdir(parents=True, exist_ok=True)
    made = [repack(d, dest) for d in metadata.distributions()]
    print(f"wheelhouse: {sum(1 for m in made if m)} wheels in {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
