"""Boot a kernel and an initramfs in qemu with TCG, collect the guest's table.

KVM is not used: this machine's /dev/kvm is a nested software backend (kvm-pvm) that dies on
ordinary instructions of a stock kernel, so every boot is TCG (``-accel tcg``; ``-cpu max``
gives the guest cmpxchg16b, xsave and the rest a distribution kernel expects). The guest has
no network device (``-nic none``). The kernel console goes to serial port 0, the table to
serial port 1, both files on this side. ``timeout`` bounds every run and kills qemu after it.
"""
from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

QEMU = "qemu-system-x86_64"
APPEND = "console=ttyS0 loglevel=4 panic=-1 rdinit=/init"


class BootError(RuntimeError):
    pass


@dataclass
class Boot:
    command: List[str]
    returncode: int
    wall_s: float
    console: str
    data: str

    def marker_uptime(self, marker: str) -> Optional[float]:
        for line in self.console.splitlines():
            if marker in line and "uptime=" in line:
                try:
                    return float(line.split("uptime=", 1)[1].split()[0])
                except ValueError:
                    return None
        return None


def qemu_path() -> Optional[str]:
    return shutil.which(QEMU)


def command(kernel: Path, initrd: Path, console: Path, data: Path, memory_mb: int = 1536, cpus: int = 1) -> List[str]:
    qemu = qemu_path()
    if qemu is None:
        raise BootError(f"{QEMU} is not installed: package qemu-system-x86 (make kernel-truth-host installs it)")
    return [qemu, "-accel", "tcg", "-cpu", "max", "-m", str(memory_mb), "-smp", str(cpus),
            "-nic", "none", "-display", "none", "-monitor", "none", "-no-reboot",
            "-serial", f"file:{console}", "-serial", f"file:{data}",
            "-kernel", str(kernel), "-initrd", str(initrd), "-append", APPEND]


def boot(kernel: Path, initrd: Path, workdir: Path, limit_s: int = 1500) -> Boot:
    """Run the guest to its power-off (or ``limit_s``); console and data as text."""
    workdir.mkdir(parents=True, exist_ok=True)
    console, data = workdir / "console.txt", workdir / "data.txt"
    for path in (console, data):
        path.write_text("")
    cmd = command(kernel, initrd, console, data)
    started = time.monotonic()
    proc = subprocess.run(["timeout", "--kill-after=10", str(limit_s), *cmd], capture_output=True, text=True)
    wall = time.monotonic() - started
    result = Boot(cmd, proc.returncode, wall, console.read_text(errors="replace"), data.read_text(errors="replace"))
    if proc.returncode == 124:
        raise BootError(f"the guest did not power off within {limit_s} s; console tail:\n{result.console[-3000:]}")
    if proc.returncode != 0:
        raise BootError(f"qemu exited {proc.returncode}: {proc.stderr.strip()[-2000:]}\n{result.console[-3000:]}")
    return result
