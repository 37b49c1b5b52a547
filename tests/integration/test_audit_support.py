"""Helpers for the audit and remediation integration tests: real namespace sets made here,
host sysctls changed and restored, and real ``ansible-playbook`` runs with their results.

(No tests in this module; ``test_audit*.py`` and ``test_remediation*.py`` import it.)
"""
from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import yaml

from tests.integration.nsfixtures import NsSet

PLAYBOOK_BIN = str(Path(sys.executable).parent / "ansible-playbook")


def read_sysctl(key: str) -> str:
    return Path("/proc/sys", key.replace(".", "/")).read_text().strip()


def write_sysctl(key: str, value: str) -> None:
    Path("/proc/sys", key.replace(".", "/")).write_text(str(value))


class HostSysctls:
    """Host sysctls this test changes, each restored only if it still holds our value: other
    engineers' tests change host keys too, and undoing *their* change mid-test (or restoring a
    value we read while they had changed it) would leave the host wrong. Writes and restores go
    under an advisory lock (``/run/nsguard-host-sysctl.lock``) that other tests may share."""

    LOCK = "/run/nsguard-host-sysctl.lock"

    def __init__(self) -> None:
        self.changed: Dict[str, tuple] = {}   # key -> (original, ours)
        self.problems: List[str] = []

    def _locked(self):
        import fcntl
        handle = open(self.LOCK, "a")
        fcntl.flock(handle, fcntl.LOCK_EX)
        return handle

    def set(self, key: str, value: str) -> str:
        with self._locked():
            original = read_sysctl(key)
            write_sysctl(key, value)
            self.changed.setdefault(key, (original, None))
            self.changed[key] = (self.changed[key][0], read_sysctl(key))
            return original

    def track(self, key: str) -> None:
        """Remember ``key``'s value before something else (a playbook) changes it for us."""
        self.changed.setdefault(key, (read_sysctl(key), None))

    def claim(self, key: str) -> None:
        """The value ``key`` holds now is ours (written by the playbook we ran)."""
        self.changed[key] = (self.changed[key][0], read_sysctl(key))

    def restore(self) -> List[str]:
        with self._locked():
            for key, (original, ours) in self.changed.items():
                current = read_sysctl(key)
                if current == ours:
                    write_sysctl(key, original)
                elif current != original:
                    self.problems.append("%s: changed by someone else to %r; left alone" % (key, current))
        self.changed.clear()
        return self.problems


@dataclass
class Spawned:
    """A process in namespaces of its own (``unshare``), killed by its own pid."""

    proc: subprocess.Popen
    binary_dir: Optional[Path] = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        NsSet(self.proc, self.proc.pid, ()).kill()  # SIGKILL to its process group, reaped
        if self.binary_dir is not None:
            shutil.rmtree(self.binary_dir, ignore_errors=True)


def spawn_named(comm: str, argv0: str, flags=("-n", "-i", "-u"), timeout: float = 10.0) -> Spawned:
    """A namespace set whose init is called ``comm`` (a copy of sleep) and whose command line
    starts with ``argv0``: ``unshare FLAGS bash -c 'exec -a ARGV0 COMM 600'``, no fork, so the
    set's only (and representative) process is that one."""
    assert len(comm) <= 15, "comm is cut at 15 characters"
    bindir = Path("/tmp") / ("nsg-it-bin-%s" % uuid.uuid4().hex[:8])
    bindir.mkdir()
    binary = bindir / comm
    shutil.copy2(shutil.which("sleep"), binary)
    script = 'echo ready; exec -a "$0" %s 600' % binary
    proc = subprocess.Popen(["unshare", *flags, "--", "bash", "-c", script, argv0], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    spawned = Spawned(proc, bindir)
    ready, dummy1, dummy2 = select.select([proc.stdout], [], [], timeout)
    if not ready or not proc.stdout.readline().startswith(b"ready"):
        spawned.kill()
        raise RuntimeError("namespace set %s did not start" % comm)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # wait for the exec to replace bash
        try:
            if Path("/proc/%d/comm" % proc.pid).read_bytes().strip() == comm.encode():
                return spawned
        except OSError:
            break
        time.sleep(0.02)
    spawned.kill()
    raise RuntimeError("namespace set %s did not exec" % comm)


@dataclass
class NamedNetns:
    name: str
    proc: subprocess.Popen

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=10, check=False)


def named_netns(prefix: str = "nsg-it") -> NamedNetns:
    """``ip netns add`` plus a process in it (``ip netns exec NAME sleep``)."""
    name = "%s-%s" % (prefix, uuid.uuid4().hex[:6])
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, timeout=10)
    proc = subprocess.Popen(["ip", "netns", "exec", name, "sleep", "600"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the sleep has entered the namespace
        try:
            if os.readlink("/proc/%d/ns/net" % proc.pid) != os.readlink("/proc/self/ns/net") and \
                    Path("/proc/%d/comm" % proc.pid).read_bytes().strip() == b"sleep":
                break
        except OSError:
            pass
        time.sleep(0.02)
    return NamedNetns(name, proc)


@dataclass
class PlaybookRun:
    rc: int
    stdout: str
    stderr: str
    result: Optional[Dict[str, Any]]   # ansible.posix.json output, when asked for

    def task_results(self, name_part: str, host: str = "localhost") -> List[Dict[str, Any]]:
        out = []
        for play in (self.result or {}).get("plays", []):
            for task in play.get("tasks", []):
                if name_part in task["task"]["name"] and host in task.get("hosts", {}):
                    out.append(task["hosts"][host])
        return out

    def task_result(self, name_part: str, host: str = "localhost") -> Dict[str, Any]:
        found = self.task_results(name_part, host)
        assert found, "no task %r in the run: rc=%d\n%s\n%s" % (name_part, self.rc, self.stdout[-3000:],
                                                                self.stderr[-3000:])
        return found[-1]

    @property
    def findings(self) -> List[Dict[str, Any]]:
        result = self.task_result("Evaluate the lint rules")
        if "findings" in result:
            return result["findings"]
        # the host failed on its findings: the lint result leaves them out, the report has them
        report = Path(self.task_result("Write the fleet reports")["dest"]) / "fleet.json"
        return [f for f in json.loads(report.read_text())["findings"] if f["host"] == "localhost"]


def run_playbook(playbook: str, extra_vars: Optional[Dict[str, Any]] = None, *, workdir: Path,
                 json_output: bool = True, args=(), timeout: float = 300) -> PlaybookRun:
    """``ansible-playbook -i localhost, -c local`` with this venv's Python."""
    argv = [PLAYBOOK_BIN, "-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=%s" % sys.executable]
    if extra_vars:
        vars_file = workdir / ("vars-%s.json" % uuid.uuid4().hex[:6])
        vars_file.write_text(json.dumps(extra_vars))
        argv += ["-e", "@%s" % vars_file]
    argv += list(args) + [playbook]
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_DEPRECATION_WARNINGS="0")
    if json_output:
        env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.posix.json"
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=str(workdir), env=env, check=False)
    result = None
    if json_output:  # warnings may come first; the JSON document starts at a line "{"
        start = proc.stdout.find("\n{") + 1 if not proc.stdout.startswith("{") else 0
        if proc.stdout[start:start + 1] == "{":
            result = json.loads(proc.stdout[start:])
    return PlaybookRun(proc.returncode, proc.stdout, proc.stderr, result)


def write_playbook(path: Path, plays: List[Dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump(plays, sort_keys=False, width=200))
    return path


def findings_of(run: PlaybookRun, rule: str, key: Optional[str] = None) -> List[Dict[str, Any]]:
    return [f for f in run.findings if f["rule"] == rule and (key is None or f["key"] == key)]


def remediation_tasks(findings: List[Dict[str, Any]], where: Optional[str] = None) -> Iterator[Dict[str, Any]]:
    for finding in findings:
        if where is None or finding["remediation"]["where"] == where:
            yield from finding["remediation"]["tasks"]
