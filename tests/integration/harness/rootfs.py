"""A busybox root filesystem built from the host's busybox-static (no registry, no network)."""
from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

BUSYBOX = "/bin/busybox"


def busybox_is_static(path: str = BUSYBOX) -> bool:
    """A dynamically linked busybox would need the host's libraries inside the rootfs."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        return False
    return b"/lib64/ld-linux" not in data and b"/lib/ld-linux" not in data


def build_rootfs(dest: Path, busybox: str = BUSYBOX) -> Path:
    """``dest`` with ``/bin/busybox``, one symlink per applet and the empty mount points a
    runtime expects (proc, sys, dev, etc, tmp). Returns ``dest``."""
    for sub in ("bin", "proc", "sys", "dev", "etc", "tmp", "root"):
        (dest / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, dest / "bin" / "busybox")
    applets = subprocess.run([busybox, "--list"], check=True, capture_output=True, text=True).stdout.split()
    for applet in applets:
        link = dest / "bin" / applet
        if applet != "busybox" and not link.exists():
            os.symlink("busybox", link)
    (dest / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (dest / "etc" / "group").write_text("root:x:0:\n")
    return dest


def pack(rootfs: Path, tarball: Path) -> Path:
    """The rootfs as an uncompressed tarball (what ``docker import``/``podman import`` read)."""
    with tarfile.open(tarball, "w") as tar:
        for entry in sorted(rootfs.iterdir()):
            tar.add(entry, arcname=entry.name)
    return tarball
