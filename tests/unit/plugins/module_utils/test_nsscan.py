"""nsscan: /proc parsers over recorded text, and the namespace scan over real namespaces."""
from __future__ import annotations

import os

import pytest

from ansible_collections.nsguard.sysctl.plugins.module_utils import nsscan


def test_proc_stat_with_hostile_comm():
    text = "4242 (evil) (x) name) S 17 4242 4242 0 -1 4194560 " + " ".join(["0"] * 12) + " 987654 rest"
    parsed = nsscan.parse_stat(text)
    assert parsed["comm"] == "evil) (x) name"
    assert parsed["ppid"] == 17 and parsed["starttime"] == 987654


def test_mountinfo_nsfs_and_named_netns():
    text = (
        "29 24 0:4 net:[4026532246] /run/netns/blue rw shared:5 - nsfs nsfs rw\n"
        "30 24 0:4 net:[4026532300] /run/docker/netns/abc rw - nsfs nsfs rw\n"
        "31 24 0:4 net:[4026532301] /run/netns/with\\040space rw - nsfs nsfs rw\n"
        "22 1 0:21 / /proc rw,nosuid - proc proc rw\n")
    mounts = nsscan.parse_mountinfo_nsfs(text)
    assert mounts[("net", 4026532246)] == ["/run/netns/blue"]
    names = nsscan.named_netns(mounts)
    assert names == {4026532246: ["blue"], 4026532301: ["with space"]}


root = pytest.mark.skipif(os.geteuid() != 0, reason="making namespaces needs root")


def test_ns_links_and_set_ids():
    assert nsscan.parse_ns_link("net:[4026531840]") == 4026531840
    host = {"net": 1, "ipc": 2, "uts": 3, "pid": 4, "user": 5, "cgroup": 6}
    assert nsscan.set_id(dict(host, net=9), host).startswith("net:9/")
    assert "net:host" in nsscan.set_id(host, host)


@root
def test_scan_finds_a_real_set_and_describes_its_init(unshared):
    host_ns = nsscan.read_ns(os.getpid())
    made = unshared("-n", "-u")
    sets, errors = nsscan.scan(host_ns, own_pids=(os.getpid(),))
    # This machine's pid 1 may be unreadable (a sandbox's init): only ours must be read.
    assert all(e["stage"] == "scan" and "permission denied" in e["message"] for e in errors)
    ours = [s for s in sets if s["ns"]["net"] == made.ns_inode("net")]
    assert len(ours) == 1
    found = ours[0]
    assert found["differs_from_host"] == ["net", "uts"]
    assert found["representative_pid"] == made.pid and found["pids"] == [made.pid]
    assert found["init"]["comm"] == "sleep" and found["init"]["cmdline"].startswith("sleep")
    assert found["ns_paths"] == {"net": "/proc/%d/ns/net" % made.pid, "uts": "/proc/%d/ns/uts" % made.pid}
    assert "ipc" in found["shares_host"]
    assert nsscan.live_member(found) == made.pid and nsscan.still_alive(found)
    made.stop()
    assert nsscan.live_member(found) is None and not nsscan.still_alive(found)


def test_a_mounted_netns_without_processes_is_a_set_of_its_own():
    host = {"net": 1, "ipc": 2, "uts": 3, "pid": 4, "user": 5, "cgroup": 6}
    mounts = {("net", 77): ["/run/netns/blue"], ("net", 1): ["/run/netns/host-alias"], ("net", 88): ["/x"]}
    sets = [{"ns": dict(host, net=88)}]
    out = nsscan.netns_only_sets({77: ["blue"]}, mounts, sets, host)
    assert [(s["ns"]["net"], s["ns_paths"], s["netns_names"], s["pids"]) for s in out] == [
        (77, {"net": "/run/netns/blue"}, ["blue"], [])]
    assert nsscan.still_alive(out[0])  # no members to lose


# --------------------------------------------------------------------------- gathers' own workers

# A stand-in for a facts module: a root process in the host's namespaces that forks a worker
# which names itself as nsenter names every fork (nsenter.name_worker) and unshares a network
# namespace, as the probe's throwaway does. The same interpreter as the test's unless told.
_FAKE_GATHER = r"""
import os, sys, time
sys.path[:0] = [%(path)r]
from ansible_collections.nsguard.sysctl.plugins.module_utils import nsenter
if %(nondumpable)r:
    import ctypes
    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: /proc/PID turns root-owned
pid = os.fork()
if pid == 0:
    nsenter.name_worker()
    nsenter.unshare(nsenter.NS_FLAGS["user"] | nsenter.NS_FLAGS["net"] if %(userns)r else nsenter.NS_FLAGS["net"])
    print(os.getpid(), flush=True)
    time.sleep(60)
    os._exit(0)
os.waitpid(pid, 0)
"""


@pytest.fixture
def fake_gather():
    import subprocess
    import sys
    procs = []

    def start(python=sys.executable, user=None, userns=False, nondumpable=False):
        from ansible_collections.nsguard.sysctl.plugins.module_utils import nsenter
        # the directory holding ansible_collections/ (…/ansible_collections/nsguard/sysctl/plugins/module_utils)
        path = os.path.abspath(nsenter.__file__)
        for dummy in range(6):
            path = os.path.dirname(path)
        argv = [python, "-c", _FAKE_GATHER % {"path": path, "userns": userns, "nondumpable": nondumpable}]
        if user:
            argv = ["setpriv", "--reuid", str(user), "--regid", str(user), "--clear-groups"] + argv
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, start_new_session=True)
        procs.append(proc)
        worker = int(proc.stdout.readline())
        return proc, worker

    yield start
    import signal
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def _set_of(sets, pid):
    return [s for s in sets if pid in s["pids"]]


@root
def test_scan_leaves_out_this_gathers_own_forks():
    """The probe's throwaway namespaces are this module's children: never a namespace set. A
    fork as nsenter makes them (named, in its own network namespace; its grandchild in a new pid
    namespace, as the pid probe's) lives while the scan runs."""
    import time

    from ansible_collections.nsguard.sysctl.plugins.module_utils import nsenter

    def throwaway():
        nsenter.unshare(nsenter.NS_FLAGS["net"] | nsenter.NS_FLAGS["pid"])
        return nsenter.run_in_grandchild(lambda: time.sleep(3) or os.getppid())

    host_ns = nsscan.read_ns(os.getpid())
    child, pipe_r = nsenter.fork_call(throwaway)
    try:
        for dummy in range(100):  # until the grandchild is there
            kids = [int(p) for p in os.listdir("/proc") if p.isdigit() and _ppid(int(p)) == child]
            if kids:
                break
            time.sleep(0.02)
        assert kids, "the throwaway's grandchild never started"
        assert nsscan.read_stat(child)["comm"] == nsscan.WORKER_COMM == nsenter.WORKER_COMM.decode()
        assert nsscan.read_ns(kids[0])["pid"] != host_ns["pid"]
        sets, errors = nsscan.scan(host_ns, own_pids=(os.getpid(),))
        assert _set_of(sets, child) == [] and _set_of(sets, kids[0]) == []
        assert not any("another nsguard.sysctl gather" in e["message"] for e in errors)
    finally:
        os.kill(child, 9)
        os.waitpid(child, 0)
        os.close(pipe_r)


def _ppid(pid):
    try:
        return nsscan.read_stat(pid)["ppid"]
    except OSError:
        return None


@root
def test_scan_leaves_out_another_gathers_workers_and_says_so(fake_gather):
    host_ns = nsscan.read_ns(os.getpid())
    dummy, worker = fake_gather()
    assert nsscan.read_stat(worker)["comm"] == nsscan.WORKER_COMM
    sets, errors = nsscan.scan(host_ns, own_pids=(os.getpid(),))
    assert _set_of(sets, worker) == []
    said = [e["message"] for e in errors if "another nsguard.sysctl gather" in e["message"]]
    assert len(said) == 1 and str(worker) in said[0]


@root
@pytest.mark.parametrize("case", ["unprivileged", "unprivileged-nondumpable", "other-interpreter"])
def test_a_look_alike_of_a_gathers_worker_is_still_a_set(fake_gather, case):
    """The name alone proves nothing: a process that calls itself nsguard-sysctl is left out only
    when it and its parent are root (real and effective uid, as the host sees them; a
    non-dumpable process's /proc entry is root-owned whoever runs it) and run this interpreter."""
    import shutil
    host_ns = nsscan.read_ns(os.getpid())
    if case == "other-interpreter":
        other = "/usr/bin/python3"
        if not os.path.exists(other) or os.path.samefile(other, "/proc/self/exe"):
            pytest.skip("no second Python interpreter file on this machine")
        dummy, worker = fake_gather(python=other)
    else:
        if shutil.which("setpriv") is None:
            pytest.skip("setpriv (util-linux) is not installed")
        dummy, worker = fake_gather(user=65534, userns=True, nondumpable=case.endswith("nondumpable"))
    assert nsscan.read_stat(worker)["comm"] == nsscan.WORKER_COMM
    sets, errors = nsscan.scan(host_ns, own_pids=(os.getpid(),))
    assert len(_set_of(sets, worker)) == 1
    assert not any("another nsguard.sysctl gather" in e["message"] for e in errors)
