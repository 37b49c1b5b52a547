"""What a process tree opened and executed, by ``strace -f -y``: shared by the reliability tests
that prove the gather never touches a container's files (test_no_container_paths.py,
test_symlinks.py)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import List

STRACE = shutil.which("strace")
SYSCALLS = "trace=open,openat,openat2,execve"

# With -y a descriptor shows its path: openat(5</proc/sys/net/core>, "somaxconn", ...) = 6</proc/...>.
_CALL = re.compile(r'\b(open|openat|openat2|execve)\((?:(?:AT_FDCWD|\d+)(?:<((?:[^>\\]|\\.)*)>)?, )?"((?:[^"\\]|\\.)*)"')
# The file an open really reached (symbolic links resolved by the kernel), also on "resumed" lines
# of calls that -f split because another process ran in between.
_RESULT = re.compile(r'\b(?:open|openat|openat2)(?:\(|\s+resumed>).*\) = \d+<((?:[^>\\]|\\.)*)>\s*$')
CONTAINER_ROOT = re.compile(r"^/proc/(\d+|self|thread-self)/root(/|$)")


@dataclass
class Trace:
    opened: List[str] = field(default_factory=list)     # paths as asked (descriptor-relative ones joined)
    reached: List[str] = field(default_factory=list)    # paths the returned descriptors point to
    executed: List[str] = field(default_factory=list)

    def touching(self, *roots: str) -> List[str]:
        """Every opened, reached or executed path under one of ``roots`` or any ``/proc/PID/root``."""
        bad = []
        for path in self.opened + self.reached + self.executed:
            if CONTAINER_ROOT.match(path) or any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots):
                bad.append(path)
        return bad

    def foreign_executables(self) -> List[str]:
        """Executed paths outside the host's own binary directories and the interpreter's."""
        allowed = ("/usr/", "/bin/", "/sbin/", os.path.dirname(sys.executable))
        return [p for p in self.executed if not p.startswith(allowed)]


def parse(text: str) -> Trace:
    trace = Trace()
    for line in text.splitlines():
        match = _CALL.search(line)
        if match:
            name, base, path = match.groups()
            if base and not path.startswith("/"):
                path = base.rstrip("/") + "/" + path
            (trace.executed if name == "execve" else trace.opened).append(path)
        result = _RESULT.search(line)
        if result:
            trace.reached.append(result.group(1))
    return trace


def run_traced(argv: List[str], out: Path, timeout: float = 300) -> tuple:
    """Run ``argv`` under ``strace -f -y``; returns (completed process, :class:`Trace`)."""
    proc = subprocess.run([STRACE, "-f", "-y", "-qq", "-e", SYSCALLS, "-o", str(out), *argv],
                          capture_output=True, text=True, timeout=timeout, check=False)
    return proc, parse(out.read_text(errors="replace"))
