"""Faults during a gather, through the real module (issue 7, part 2).

Real namespaces (``unshare``), a real ``ansible-playbook`` where the fault can be timed from
outside, ``gather()`` in-process where the fault must fall between two steps of the module.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.ansible_run import BIN, ansible_env, write_playbook
from tests.integration.nsfixtures import spawn_set

pytestmark = pytest.mark.root
HERE = Path(__file__).resolve().parent
PARAMS = dict(containers=True, probe=False, view="diff", include=[], exclude=[], timeout=5.0,
              gather_timeout=60.0, parallel=0, max_pids_per_set=20, runtime_cli=False,
              sysctl_d_dirs=[], sysctl_conf=None)


def playbook_cmd(tmp_path: Path, module_args: dict, out: Path) -> list:
    book = write_playbook(tmp_path / "gather.yml", [
        {"name": "gather", "nsguard.sysctl.sysctl_facts": module_args},
        {"name": "save", "ansible.builtin.copy": {"content": "{{ ansible_facts.nsguard_sysctl | to_json }}",
                                                  "dest": str(out)}},
    ])
    return [str(BIN / "ansible-playbook"), "-c", "local", "-i", "localhost,", str(book)]


def _argv(pid) -> list:
    try:
        with open("/proc/%s/cmdline" % pid, "rb") as handle:
            return handle.read().split(b"\0")
    except OSError:
        return []


def _is_module(pid) -> bool:
    argv = _argv(pid)
    return len(argv) > 1 and argv[0].endswith((b"python", b"python3")) and b"AnsiballZ_sysctl_facts" in argv[1]


def _ppid(pid) -> int:
    try:
        with open("/proc/%s/stat" % pid) as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def _ours(pid) -> bool:
    """Started (through ansible-playbook) by this test process: a gather of somebody else's on
    the same machine (another test run, a bench) is never stopped or killed by these tests."""
    me = os.getpid()
    for dummy in range(64):  # a parent chain is a few levels deep; bounded in case of a loop
        pid = _ppid(pid)
        if pid == me:
            return True
        if pid <= 1:
            return False
    return False


def module_pids() -> list:
    """This test's sysctl_facts module process (the AnsiballZ python, not the shell that starts
    it and not its own forked readers)."""
    return [int(n) for n in os.listdir("/proc")
            if n.isdigit() and _is_module(n) and not _is_module(_ppid(n)) and _ours(n)]


def children(pid: int) -> list:
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as handle:
            return [int(p) for p in handle.read().split()]
    except OSError:
        return []


def by_net(facts: dict) -> dict:
    return {s["ns"]["net"]: s for s in facts["namespace_sets"]}


def test_200_sets_a_third_killed_while_a_real_playbook_gathers(tmp_path):
    rng = random.Random(7)
    sets = []
    try:
        for i in range(200):
            flags = ("-n", "-i", "-u", "-p", "-f") if i % 4 == 0 else ("-n",)
            sets.append(spawn_set("echo %d > /proc/sys/net/core/somaxconn\n" % (3000 + i), flags=flags))
        victims = set(rng.sample(range(200), 67))
        out = tmp_path / "facts.json"
        started = time.monotonic()
        proc = subprocess.Popen(playbook_cmd(tmp_path, {"probe": False, "runtime_cli": False, "timeout": 5,
                                                        "gather_timeout": 90, "parallel": 2}, out),
                                env=ansible_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        # Wait for the module to start, then kill a third at random moments over its run
        # (scan, identification, entering and reading all take part of it).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not module_pids():
            time.sleep(0.005)
        seen_module = bool(module_pids())
        for index in sorted(victims, key=lambda _i: rng.random()):
            time.sleep(rng.uniform(0, 0.12))
            sets[index].kill()
        output, dummy = proc.communicate(timeout=300)
        elapsed = time.monotonic() - started
        assert proc.returncode == 0, output[-4000:]
        assert seen_module, "the kills must fall inside the module's run"
        facts = json.loads(out.read_text())
    finally:
        for made in sets:
            made.kill()
    got = by_net(facts)
    killed_recorded = 0
    for index, made in enumerate(sets):
        ns_set = got.get(made.ns["net"])
        if index in victims:
            if ns_set is None:
                continue  # gone before the scan listed it
            if ns_set["view"] is None:
                # Killed while being identified too: that step says the process exited as well.
                stages = [e["stage"] for e in ns_set["errors"]]
                assert stages[-1] == "vanished" and set(stages) <= {"identify", "privileges", "vanished"}, stages
                killed_recorded += 1
            else:  # read before it died: then it is complete
                assert ns_set["view"]["differs"]["net.core.somaxconn"]["container"] == str(3000 + index)
            continue
        assert ns_set is not None, "surviving set %d missing" % index
        assert ns_set["errors"] == [], ns_set["errors"]
        assert ns_set["view"]["differs"]["net.core.somaxconn"]["container"] == str(3000 + index)
        assert ns_set["view"]["key_count"] > 100
    # Sets of -p -f victims come in pairs (unshare and its child share the netns): count per set.
    victim_nets = {sets[i].ns["net"] for i in victims}
    mine = {made.ns["net"] for made in sets}
    recorded = [s for s in facts["namespace_sets"] if s["ns"]["net"] in victim_nets and s["view"] is None]
    assert killed_recorded <= len(recorded)
    ids = {s["id"]: s["ns"]["net"] for s in facts["namespace_sets"]}
    for error in facts["errors"]:
        if ids.get(error.get("set")) in mine:
            assert ids[error["set"]] in victim_nets and error["stage"] in {"identify", "privileges", "vanished"}, error
    read_before = len([i for i in victims if (got.get(sets[i].ns["net"]) or {}).get("view")])
    assert killed_recorded + read_before > 0, "no kill fell between the scan and the end of the gather"
    assert facts["duration_ms"] < 90_000 and elapsed < 200
    print("200 sets, %d killed, %d recorded as vanished, %d read before dying; module %.1f s, playbook %.1f s"
          % (len(victims), killed_recorded, len([i for i in victims if got.get(sets[i].ns["net"], {}).get("view")]),
             facts["duration_ms"] / 1000, elapsed))


def test_representative_exits_and_the_set_is_read_through_another_member(monkeypatch):
    """The set's init (a shell) dies after the scan; its children live on in the namespaces."""
    from ansible_collections.nsguard.sysctl.plugins.module_utils import views
    from ansible_collections.nsguard.sysctl.plugins.modules import sysctl_facts

    # unshare execs the shell, which leaves two children and execs sleep: the set's init.
    made = spawn_set("echo 4321 > /proc/sys/net/core/somaxconn\nsleep 600 &\nsleep 600 &\n", flags=("-n",))
    init = made.proc.pid
    real = views.make_reader

    def make_reader_then_kill_init(ns_set, *args, **kwargs):
        if ns_set["ns"]["net"] == made.ns["net"] and ns_set["representative_pid"] == init:
            os.kill(init, signal.SIGKILL)  # a zombie until we reap it: no namespace links
        return real(ns_set, *args, **kwargs)

    monkeypatch.setattr(views, "make_reader", make_reader_then_kill_init)
    try:
        facts = sysctl_facts.gather(dict(PARAMS))
    finally:
        made.kill()
    ns_set = by_net(facts)[made.ns["net"]]
    assert ns_set["representative_pid"] == init and ns_set["pid_count"] >= 3
    assert ns_set["errors"] == [], ns_set["errors"]
    assert ns_set["view"]["differs"]["net.core.somaxconn"]["container"] == "4321"


PID_REUSE_DRIVER = r'''
import json, os, subprocess, sys, time
sys.path.insert(0, sys.argv[1])
from ansible_collections.nsguard.sysctl.plugins.module_utils import views
from ansible_collections.nsguard.sysctl.plugins.modules import sysctl_facts

def start(value):
    p = subprocess.Popen(["unshare", "-n", "sh", "-c", "echo %d > /proc/sys/net/core/somaxconn; echo ok; exec sleep 600" % value],
                         stdout=subprocess.PIPE)
    p.stdout.readline()
    return p

old = start(1111)
state = {}
real = views.make_reader
def reuse(ns_set, *a, **k):
    reader = real(ns_set, *a, **k)
    if ns_set["representative_pid"] == old.pid and not state:
        old.kill(); old.wait()
        with open("/proc/sys/kernel/ns_last_pid", "w") as f:   # this pid namespace's, not the host's
            f.write(str(old.pid - 1))
        state["new"] = start(2222)
    return reader
views.make_reader = reuse
params = json.loads(sys.argv[2])
facts = sysctl_facts.gather(params)
new = state["new"]
print(json.dumps({"old_pid": old.pid, "new_pid": new.pid, "facts": facts}))
new.kill()
'''


def test_pid_reuse_is_caught_by_the_namespace_inode(tmp_path):
    """In a private pid namespace (its ns_last_pid is ours to set), the set's pid is given to
    a new process in another netns between the scan and the entry."""
    driver = tmp_path / "pid_reuse.py"
    driver.write_text(PID_REUSE_DRIVER)
    dev = str(Path(__file__).resolve().parents[2] / ".venv" / "dev-collections")
    proc = subprocess.run(["unshare", "-p", "-f", "--mount-proc", sys.executable, str(driver), dev, json.dumps(PARAMS)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["new_pid"] == result["old_pid"], "the kernel did not hand out the same pid"
    sets = [s for s in result["facts"]["namespace_sets"] if s["representative_pid"] == result["old_pid"]]
    assert len(sets) == 1
    (ns_set,) = sets
    assert ns_set["view"] is None  # never the new process's values (2222) under the old set
    assert [e["stage"] for e in ns_set["errors"]] == ["vanished"]
    assert "changed since the scan" in ns_set["errors"][0]["message"]


def test_eio_key_is_recorded_and_the_set_is_complete():
    """stable_secret answers EIO until set; a set with its own netns has its own copies. The
    view still holds every other key of the netns (counted from inside with nsenter)."""
    from ansible_collections.nsguard.sysctl.plugins.modules import sysctl_facts

    made = spawn_set("ip link add nsgveth0 type veth peer name nsgveth1\necho 2468 > /proc/sys/net/core/somaxconn\n",
                     flags=("-n",))
    try:
        count = subprocess.run(["nsenter", "-t", str(made.inner_pid), "-n", "find", "/proc/sys/net", "-type", "f"],
                               capture_output=True, text=True, check=True).stdout.count("\n")
        facts = sysctl_facts.gather(dict(PARAMS))
    finally:
        made.kill()
    assert facts["host"]["unreadable"]["net.ipv6.conf.all.stable_secret"]["reason"] == "EIO"
    ns_set = by_net(facts)[made.ns["net"]]
    assert ns_set["view"]["unreadable"]["net.ipv6.conf.nsgveth0.stable_secret"]["reason"] == "EIO"
    assert ns_set["view"]["key_count"] == count
    assert ns_set["view"]["differs"]["net.core.somaxconn"]["container"] == "2468"
    assert ns_set["errors"] == []


def test_setns_denied_is_recorded_per_set(tmp_path):
    """The module without CAP_SYS_ADMIN (bounding set): setns is denied for a set it may open,
    a set of full-capability processes cannot even be listed; both recorded, the host complete."""
    weak = subprocess.Popen(["unshare", "-n", "setpriv", "--bounding-set=-sys_admin", "sleep", "600"])
    strong = spawn_set("", flags=("-n",))
    time.sleep(0.3)
    weak_net = os.stat("/proc/%d/ns/net" % weak.pid).st_ino
    out = tmp_path / "facts.json"
    try:
        proc = subprocess.run(["setpriv", "--bounding-set=-sys_admin", "--inh-caps=-sys_admin"]
                              + playbook_cmd(tmp_path, {"runtime_cli": False, "timeout": 5}, out),
                              env=ansible_env(), capture_output=True, text=True, timeout=300, check=False)
    finally:
        weak.kill()
        weak.wait()
        strong.kill()
    assert proc.returncode == 0, proc.stdout[-3000:]
    facts = json.loads(out.read_text())
    ns_set = by_net(facts)[weak_net]
    assert ns_set["view"] is None
    assert [e["stage"] for e in ns_set["errors"]] == ["enter"]
    assert "setns(net) failed: Operation not permitted" in ns_set["errors"][0]["message"]
    # Full-capability processes can still be listed (CAP_SYS_PTRACE is kept), not entered.
    assert by_net(facts)[strong.ns["net"]]["errors"][0]["message"].startswith("setns(net) failed")
    assert {e["namespace"] for e in facts["errors"] if e["stage"] == "probe"} == {"net", "ipc", "uts", "pid"}
    assert len(facts["host"]["keys"]) > 500 and "net.core.somaxconn" in facts["host"]["keys"]


def test_a_reader_that_blocks_is_killed_at_the_per_set_timeout(tmp_path):
    """Nothing we know of blocks in setns(2) or a /proc/sys read, so the reader of one set is
    stopped (SIGSTOP: as good as a read stuck in the kernel) while a real playbook gathers."""
    sets = [spawn_set("echo %d > /proc/sys/net/core/somaxconn\n" % (5000 + i), flags=("-n",)) for i in range(6)]
    out = tmp_path / "facts.json"
    stopped = []

    def stop_first_reader():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not stopped:
            for module in module_pids():
                for child in [c for c in children(module) if _is_module(c)]:
                    try:
                        os.kill(child, signal.SIGSTOP)
                        stopped.append(child)
                    except ProcessLookupError:
                        continue
                    return
            time.sleep(0.001)

    watcher = threading.Thread(target=stop_first_reader)
    watcher.start()
    try:
        started = time.monotonic()
        proc = subprocess.run(playbook_cmd(tmp_path, {"probe": False, "runtime_cli": False, "timeout": 2,
                                                      "parallel": 1}, out),
                              env=ansible_env(), capture_output=True, text=True, timeout=300, check=False)
        elapsed = time.monotonic() - started
    finally:
        watcher.join()
        for made in sets:
            made.kill()
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert stopped
    facts = json.loads(out.read_text())
    timed_out = [s for s in facts["namespace_sets"] if any(e["stage"] == "timeout" for e in s["errors"])]
    assert len(timed_out) == 1 and timed_out[0]["view"] is None
    assert "2.0 s" in timed_out[0]["errors"][0]["message"]
    got = by_net(facts)
    for index, made in enumerate(sets):
        if got[made.ns["net"]] is not timed_out[0]:
            assert got[made.ns["net"]]["view"]["differs"]["net.core.somaxconn"]["container"] == str(5000 + index)
    assert not os.path.exists("/proc/%d" % stopped[0])  # the stopped reader was killed and reaped
    assert elapsed < 60
