"""Real namespaces for the target-side unit tests: a process made by ``unshare`` in its own
namespaces, killed and reaped after the test (nothing is left behind)."""
from __future__ import annotations

import os
import subprocess
import time

import pytest



class Unshared:
    """``unshare FLAGS sleep``: without ``-f`` the sleep itself lives in the new namespaces."""

    def __init__(self, *flags: str):
        self.proc = subprocess.Popen(["unshare", *flags, "sleep", "600"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self.pid = self.proc.pid
        deadline = time.monotonic() + 10
        # unshare(1) makes the namespaces, then execs sleep: wait until the exec is done.
        while time.monotonic() < deadline:
            try:
                if os.readlink("/proc/%d/exe" % self.pid).endswith("/sleep"):
                    break
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError("unshare %s failed: %s" % (" ".join(flags), self.proc.stderr.read().decode()))
            time.sleep(0.01)

    def ns_inode(self, nstype: str) -> int:
        return os.stat("/proc/%d/ns/%s" % (self.pid, nstype)).st_ino

    def ns_path(self, nstype: str) -> str:
        return "/proc/%d/ns/%s" % (self.pid, nstype)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.proc.stderr.close()


@pytest.fixture
def unshared():
    """Make ``Unshared(*flags)`` processes; all are killed at the end of the test."""
    made = []

    def make(*flags: str) -> Unshared:
        proc = Unshared(*flags)
        made.append(proc)
        return proc
    yield make
    for proc in made:
        proc.stop()
