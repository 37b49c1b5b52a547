#!/usr/bin/env python
"""Build the ansible.posix collection tarball that the remediation playbook needs, offline.

The remediation tasks use ``ansible.posix.sysctl``, and Galaxy is not reachable from the
project's machines. The ``ansible`` package on PyPI ships ansible.posix inside its wheel
(``ansible_collections/ansible/posix/``), so this script takes the collection from that wheel:

1. find ``ansible-<pin>-*.whl`` in WHEELHOUSE, where ``<pin>`` is the ``ansible==`` line of
   test-requirements.txt (one pin for the tests and for ``make audit``); when it is not there,
   ``pip download --no-deps`` it into WHEELHOUSE (the package registry; later runs are offline);
2. check the collection's version and the sha256 of its ``FILES.json`` against ``PINNED`` below,
   then every file the wheel carries against that ``FILES.json`` (the wheel drops tests and CI
   files, so only the files present are checked - a changed file is refused);
3. write a ``galaxy.yml`` from its ``MANIFEST.json`` and ``ansible-galaxy collection build`` it:
   the result is an ordinary collection artifact whose ``FILES.json`` lists exactly what it holds,
   so ``ansible-galaxy collection install --offline`` and ``collection verify --offline`` accept it.

Usage: python scripts/posix_collection.py WHEELHOUSE OUTPUT_DIR   (prints the tarball's path)
"""
from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PREFIX = "ansible_collections/ansible/posix/"
# ansible package version -> (ansible.posix version, sha256 of its FILES.json), read from the
# wheel of that version as published on PyPI (2026-12-02). A new ``ansible==`` pin needs a row.
PINNED = {
    "12.3.0": ("2.1.0", "d4a1c0f763062c80d31e337f6a176d8c794945e36f624ca3be55694272ddc061"),
}
# MANIFEST.json collection_info keys that galaxy.yml takes as they are.
GALAXY_KEYS = ("namespace", "name", "version", "readme", "authors", "description", "license_file", "tags",
               "dependencies", "repository", "documentation", "homepage", "issues")


def die(message: str) -> "NoReturn":  # noqa: F821 - typing only
    print("posix_collection: " + message, file=sys.stderr)
    raise SystemExit(1)


def ansible_pin() -> str:
    text = (REPO / "test-requirements.txt").read_text(encoding="utf-8")
    found = re.search(r"^ansible==([0-9][^\s#;]*)", text, re.M)
    if not found:
        die("test-requirements.txt has no 'ansible==VERSION' line")
    return found.group(1)


def find_wheel(wheelhouse: Path, version: str) -> Path:
    wheels = sorted(wheelhouse.glob("ansible-%s-*.whl" % version))
    if not wheels:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--retries", "2",
               "--find-links", str(wheelhouse), "-d", str(wheelhouse), "ansible==" + version]
        if subprocess.run(cmd, check=False).returncode != 0:
            die("cannot get the ansible %s wheel: not in %s and pip download failed" % (version, wheelhouse))
        wheels = sorted(wheelhouse.glob("ansible-%s-*.whl" % version))
    if not wheels:
        die("pip download left no ansible-%s wheel in %s" % (version, wheelhouse))
    return wheels[0]


def extract(wheel: Path, version: str, dest: Path) -> dict:
    """The checked collection files under ``dest``; returns MANIFEST.json's collection_info."""
    if version not in PINNED:
        die("no pinned ansible.posix for ansible %s: add its row to PINNED in %s" % (version, __file__))
    posix_version, files_sha = PINNED[version]
    with zipfile.ZipFile(wheel) as archive:
        members = {n[len(PREFIX):]: n for n in archive.namelist() if n.startswith(PREFIX) and not n.endswith("/")}
        if "MANIFEST.json" not in members or "FILES.json" not in members:
            die("%s has no %s{MANIFEST,FILES}.json" % (wheel, PREFIX))
        files_json = archive.read(members["FILES.json"])
        if hashlib.sha256(files_json).hexdigest() != files_sha:
            die("%s: ansible.posix FILES.json has sha256 %s, pinned %s" % (
                wheel, hashlib.sha256(files_json).hexdigest(), files_sha))
        info = json.loads(archive.read(members["MANIFEST.json"]))["collection_info"]
        if info.get("version") != posix_version:
            die("%s: ansible.posix is %s, pinned %s" % (wheel, info.get("version"), posix_version))
        expected = {f["name"]: f["chksum_sha256"] for f in json.loads(files_json)["files"] if f["ftype"] == "file"}
        for rel, name in sorted(members.items()):
            if rel in ("MANIFEST.json", "FILES.json"):
                continue
            data = archive.read(name)
            if expected.get(rel) != hashlib.sha256(data).hexdigest():
                die("%s: %s is not the file ansible.posix %s lists in FILES.json" % (wheel, rel, posix_version))
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    return info


def build(source: Path, info: dict, out: Path) -> Path:
    galaxy = {k: info[k] for k in GALAXY_KEYS if info.get(k) not in (None, "", [])}
    galaxy.setdefault("dependencies", {})
    # JSON is YAML: no YAML library needed in the interpreter that runs this.
    (source / "galaxy.yml").write_text(json.dumps(galaxy, indent=1) + "\n", encoding="utf-8")
    galaxy_bin = Path(sys.executable).parent / "ansible-galaxy"
    cmd = [str(galaxy_bin) if galaxy_bin.exists() else "ansible-galaxy", "collection", "build", "--force",
           "--output-path", str(out), str(source)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        die("ansible-galaxy collection build failed: %s" % (done.stderr.strip() or done.stdout.strip()))
    tarball = out / ("ansible-posix-%s.tar.gz" % info["version"])
    if not tarball.is_file():
        die("ansible-galaxy collection build wrote no %s" % tarball)
    return tarball


def main(argv: list) -> int:
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    wheelhouse, out = Path(argv[1]), Path(argv[2])
    wheelhouse.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    version = ansible_pin()
    wheel = find_wheel(wheelhouse, version)
    with tempfile.TemporaryDirectory(prefix="posix-collection.") as tmp:
        source = Path(tmp) / "posix"
        info = extract(wheel, version, source)
        print(build(source, info, out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
