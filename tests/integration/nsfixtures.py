"""Real namespaces for tests: ``unshare`` process sets and ``ip netns`` names, cleaned up.

Every set is a child ``unshare ... --kill-child`` process that runs a shell script inside its
new namespaces (setting distinctive values there), prints ``ready`` and then sleeps. Killing the
``unshare`` process kills the set; nothing is left behind.
"""
from __future__ import annotations

import os
import select
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field

from ansible_collections.nsguard.sysctl.plugins.module_utils import nsscan


@dataclass
class NsSet:
    proc: subprocess.Popen
    inner_pid: int
    flags: tuple
    ns: dict = field(default_factory=dict)

    def kill(self) -> None:
        # The whole process group, even when its leader already exited: members a test left
        # behind (background children of the set's shell) still hold the group.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL is not ignorable
            pass


def read_ns(pid: int) -> dict:
    """The compared namespaces of a process, as the module reads them."""
    return nsscan.read_ns(pid, types=nsscan.COMPARED_TYPES)


def spawn_set(script: str = "", flags: tuple = ("-n", "-i", "-u", "-p", "-f"), timeout: float = 10.0) -> NsSet:
    """Start ``unshare FLAGS --kill-child sh -c SCRIPT; echo ready; exec sleep``."""
    body = f"set -e\n{script}\necho ready $$\nexec sleep 600\n"
    proc = subprocess.Popen(["unshare", *flags, "--kill-child", "sh", "-c", body],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + timeout
    line = b""
    while time.monotonic() < deadline:
        ready, dummy1, dummy2 = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            break
        if proc.poll() is not None:
            break
    if not line.startswith(b"ready"):
        err = proc.stderr.read().decode() if proc.poll() is not None else ""
        NsSet(proc, 0, flags).kill()
        raise RuntimeError(f"namespace set did not start: {line!r} {err}")
    # The shell's $$ is 1 inside a new pid namespace: find the inner process from the outside.
    inner = _inner_pid(proc.pid, deadline)
    return NsSet(proc, inner, flags, read_ns(inner))


def _inner_pid(unshare_pid: int, deadline: float) -> int:
    """The process that runs inside the namespaces: unshare itself, or its forked child (-f)."""
    while time.monotonic() < deadline:
        try:
            children = open(f"/proc/{unshare_pid}/task/{unshare_pid}/children").read().split()
        except OSError:
            children = []
        if children:
            return int(children[0])
        time.sleep(0.02)
    return unshare_pid


class NetnsName:
    """``ip netns add`` with a unique name; ``delete()`` removes it."""

    def __init__(self, prefix: str = "nsg-test") -> None:
        self.name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.inode = os.stat(f"/run/netns/{self.name}").st_ino

    def exec(self, *cmd: str) -> None:
        subprocess.run(["ip", "netns", "exec", self.name, *cmd], check=True)

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], check=False)


def host_value(key: str) -> str:
    with open("/proc/sys/" + key.replace(".", "/")) as handle:
        return handle.read().rstrip("\n")
