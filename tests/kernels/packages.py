"""Debian kernel packages for the kernel matrix, fetched with apt and unpacked with dpkg -x.

Nothing is installed: apt runs with a private state directory (its own sources list, lists and
archive cache under ``~/.cache/nsguard-sysctl/kernels/apt-<suite>``), so the host's apt
configuration and /boot are never touched. ``apt-get download`` fetches the .deb, ``dpkg -x``
unpacks it into ``~/.cache/nsguard-sysctl/kernels/trees/<release>``. When Debian's archive does
not answer, a .deb of the same kernel series already in the host's apt archive cache (or ours)
is used, and the table records where it came from.
"""
from __future__ import annotations

import glob
import hashlib
import os
import re
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional

CACHE = Path(os.environ.get("NSGUARD_KERNEL_CACHE", Path.home() / ".cache" / "nsguard-sysctl" / "kernels"))
HOST_ARCHIVES = Path("/var/cache/apt/archives")
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
MIRROR = "http://deb.debian.org/debian"
SECURITY = "http://deb.debian.org/debian-security"

# One kernel series per entry: the Debian suite that ships it (with its security suite: a kept-up
# Debian machine runs the kernel from there) and the metapackage that names the current ABI. The
# image package (linux-image-<release>[-unsigned]) is what is used; apt picks the newest version
# the suites offer.
SERIES: Dict[str, Dict[str, str]] = {
    "6.1": {"suite": "bookworm", "meta": "linux-image-amd64"},
    "6.12": {"suite": "trixie", "meta": "linux-image-amd64"},
}
# Debian 12 names an image by ABI (linux-image-6.1.0-50-amd64), Debian 13 by the upstream version
# (linux-image-6.12.117+deb13-amd64); the release is what `uname -r` prints in the guest.
IMAGE = re.compile(r"^linux-image-(?P<release>(?P<series>\d+\.\d+)\.\d+\S*?-(?:cloud-)?amd64)(?:-unsigned)?$")


class PackageError(RuntimeError):
    """A kernel package could not be had (the message says why)."""


@dataclass
class KernelPackage:
    series: str
    package: str
    version: str
    source: str          # the Debian source package and version (dpkg-deb Source field)
    suite: str
    origin: str          # "apt-get download", or the cached .deb used and why
    deb: str
    sha256: str          # of the .deb: the exact package, whichever way it came
    release: str         # the kernel release (uname -r) the package installs
    tree: str            # where dpkg -x unpacked it

    def as_dict(self) -> Dict[str, str]:
        return asdict(self)

    @property
    def vmlinuz(self) -> Path:
        return Path(self.tree) / "boot" / f"vmlinuz-{self.release}"

    @property
    def modules(self) -> Path:
        for base in ("lib", "usr/lib"):
            path = Path(self.tree) / base / "modules" / self.release
            if path.is_dir():
                return path
        raise PackageError(f"{self.package}: no lib/modules/{self.release} in {self.tree}")


def _apt_dir(suite: str) -> Path:
    return CACHE / f"apt-{suite}"


def _apt_options(suite: str) -> List[str]:
    root = _apt_dir(suite)
    return ["-o", f"Dir::Etc::sourcelist={root / 'sources.list'}", "-o", "Dir::Etc::sourceparts=-",
            "-o", f"Dir::State::Lists={root / 'lists'}", "-o", f"Dir::State::status={root / 'status'}",
            "-o", f"Dir::Cache={root / 'cache'}", "-o", "Dir::Etc::preferencesparts=-",
            "-o", "APT::Get::List-Cleanup=0", "-o", "Debug::NoLocking=1"]


def _prepare_apt(suite: str) -> None:
    root = _apt_dir(suite)
    for sub in ("lists/partial", "cache/archives/partial"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "sources.list").write_text(f"deb [signed-by={KEYRING}] {MIRROR} {suite} main\n"
                                       f"deb [signed-by={KEYRING}] {SECURITY} {suite}-security main\n")
    (root / "status").touch()


def _run(cmd: List[str], cwd: Optional[Path] = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def _resolve_image(series: str) -> str:
    """The image package the suite's metapackage depends on (apt-cache depends, private state)."""
    spec = SERIES[series]
    opts = _apt_options(spec["suite"])
    proc = _run(["apt-cache", *opts, "depends", spec["meta"]])
    for line in proc.stdout.splitlines():
        name = line.split(":", 1)[-1].strip()
        match = IMAGE.match(name)
        if line.strip().startswith("Depends:") and match and match.group("series") == series:
            return name
    raise PackageError(f"{spec['meta']} in {spec['suite']} depends on no linux-image-{series}.* package "
                       f"(apt-cache depends: {proc.stdout.strip() or proc.stderr.strip()})")


def _download(series: str) -> Path:
    spec = SERIES[series]
    _prepare_apt(spec["suite"])
    for attempt in range(3):
        # This machine's resolver fails now and then for a few seconds ("Temporary failure
        # resolving"): try again before falling back to a cached .deb.
        update = _run(["apt-get", *_apt_options(spec["suite"]), "update"])
        failed = [line for line in update.stderr.splitlines() if line.startswith(("W: Failed", "E:"))]
        if update.returncode == 0 and not failed:
            break
        time.sleep(5 * (attempt + 1))
    else:
        raise PackageError(f"apt-get update for {spec['suite']} failed: {'; '.join(failed) or update.stderr.strip()}")
    package = _resolve_image(series)
    debs = CACHE / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    proc = _run(["apt-get", *_apt_options(spec["suite"]), "download", package], cwd=debs)
    if proc.returncode != 0:
        raise PackageError(f"apt-get download {package}: {proc.stderr.strip()}")
    found = sorted(debs.glob(f"{package}_*.deb"), key=os.path.getmtime)
    if not found:
        raise PackageError(f"apt-get download {package} left no .deb in {debs}")
    return found[-1]


def _cached(series: str) -> Optional[Path]:
    """A linux-image-<series>.* .deb already on this machine (ours first, then the host's apt cache)."""
    for folder in (CACHE / "debs", HOST_ARCHIVES):
        names = sorted(glob.glob(str(folder / f"linux-image-{series}.*_*.deb")), key=os.path.getmtime)
        names = [n for n in names if IMAGE.match(Path(n).name.split("_", 1)[0])]
        if names:
            return Path(names[-1])
    return None


def _field(deb: Path, name: str) -> str:
    proc = _run(["dpkg-deb", "-f", str(deb), name])
    if proc.returncode != 0:
        raise PackageError(f"dpkg-deb -f {deb} {name}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def unpack(series: str, deb: Path, origin: str) -> KernelPackage:
    package = _field(deb, "Package")
    match = IMAGE.match(package)
    if not match or match.group("series") != series:
        raise PackageError(f"{deb} is {package!r}, not a linux-image-{series}.* package")
    release = match.group("release")
    tree = CACHE / "trees" / release
    marker = tree / ".unpacked"
    version = _field(deb, "Version")
    if not marker.exists() or marker.read_text().strip() != version:
        tree.mkdir(parents=True, exist_ok=True)
        proc = _run(["dpkg", "-x", str(deb), str(tree)])
        if proc.returncode != 0:
            raise PackageError(f"dpkg -x {deb}: {proc.stderr.strip()}")
        marker.write_text(version + "\n")
    kp = KernelPackage(series=series, package=package, version=version, source=_field(deb, "Source"),
                       suite=SERIES[series]["suite"], origin=origin, deb=deb.name, sha256=_sha256(deb),
                       release=release, tree=str(tree))
    if not kp.vmlinuz.exists():
        raise PackageError(f"{package}: no {kp.vmlinuz}")
    modules = kp.modules  # raises when the package has no modules tree
    if not (modules / "modules.dep").exists():
        # The package ships no modules.dep (its postinst runs depmod): made here, in the tree.
        # depmod -b BASE reads BASE/lib/modules/<release>: BASE is the tree, or its usr/ when the
        # package is merged-/usr (Debian 13) and dpkg -x made no /lib link.
        base = modules.parents[2]
        try:
            proc = _run(["depmod", "-b", str(base), release])
        except FileNotFoundError as exc:
            raise PackageError("depmod is not installed: package kmod (make kernel-truth-host installs it)") from exc
        if proc.returncode != 0 or not (modules / "modules.dep").exists():
            raise PackageError(f"depmod -b {base} {release}: {proc.stderr.strip()}")
    return kp


def fetch(series: str, offline: bool = False) -> KernelPackage:
    """The kernel package of ``series`` unpacked: from Debian's archive, else from a cached .deb."""
    if series not in SERIES:
        raise PackageError(f"unknown kernel series {series!r}; known: {', '.join(SERIES)}")
    problem = "offline"
    if not offline:
        try:
            deb = _download(series)
            return unpack(series, deb, "apt-get download")
        except (PackageError, subprocess.SubprocessError, OSError) as exc:
            problem = str(exc)
    deb = _cached(series)
    if deb is None:
        raise PackageError(f"no linux-image-{series}.* package: {problem}; none cached in {CACHE / 'debs'} "
                           f"or {HOST_ARCHIVES}")
    return unpack(series, deb, f"cached {deb} ({problem})")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
