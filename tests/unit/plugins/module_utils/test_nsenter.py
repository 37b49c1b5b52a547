"""nsenter: the reader pool (answers, a job's failure, timeouts, the deadline, a worker that dies or
cannot come back), entering real namespaces and the order of entry, reads as a new process."""
from __future__ import annotations

import os
import time

import pytest

from ansible_collections.nsguard.sysctl.plugins.module_utils import nsenter

root = pytest.mark.skipif(os.geteuid() != 0, reason="entering and making namespaces needs root")


def _children() -> set:
    """This process's children, alive or not yet reaped (every thread's ``children`` list)."""
    found = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            with open("/proc/self/task/%s/children" % tid) as handle:
                found.update(int(pid) for pid in handle.read().split())
        except OSError:
            continue
    return found


_BEFORE: set = set()


@pytest.fixture(autouse=True)
def _children_before():
    """In the whole suite the test process already has children of its own (daemons and
    processes of session fixtures): only those a test adds count as left behind."""
    _BEFORE.clear()
    _BEFORE.update(_children())
    yield


def no_children_left():
    return not (_children() - _BEFORE)


def test_answers_and_failures_by_job_name():
    def boom():
        raise ValueError("bad value")

    def refused():
        raise nsenter.NamespaceError("setns(net) failed: Operation not permitted")

    jobs = [nsenter.Job("a", lambda: 1 + 1), nsenter.Job("b", boom), nsenter.Job("c", refused),
            nsenter.Job("d", lambda: {"nested": [1, "x"]})]
    results = nsenter.run_parallel(jobs, parallel=2, timeout=10.0)
    assert results == {
        "a": {"ok": True, "value": 2},
        "b": {"ok": False, "stage": "read", "error": "ValueError: bad value"},
        "c": {"ok": False, "stage": "enter", "error": "setns(net) failed: Operation not permitted"},
        "d": {"ok": True, "value": {"nested": [1, "x"]}},
    }
    assert no_children_left()


def test_a_worker_runs_job_after_job():
    results = nsenter.run_parallel([nsenter.Job(i, os.getpid) for i in range(6)], parallel=1, timeout=10.0)
    pids = {answer["value"] for answer in results.values()}
    assert len(results) == 6 and len(pids) == 1 and os.getpid() not in pids


def test_a_hung_job_is_killed_and_the_next_gets_a_fresh_worker():
    jobs = [nsenter.Job("hangs", lambda: time.sleep(60)), nsenter.Job("after", os.getpid),
            nsenter.Job("own-limit", lambda: time.sleep(60), timeout=0.3)]
    started = time.monotonic()
    results = nsenter.run_parallel(jobs, parallel=1, timeout=0.5)
    assert time.monotonic() - started < 10
    assert results["hangs"]["stage"] == "timeout"
    assert "within 0.5 s" in results["hangs"]["error"] and "killed" in results["hangs"]["error"]
    assert "within 0.3 s" in results["own-limit"]["error"]
    assert results["after"]["ok"] is True
    assert no_children_left()


def test_jobs_not_started_by_the_deadline_are_reported_not_run():
    ran = []
    results = nsenter.run_parallel([nsenter.Job("x", lambda: ran.append(1)), nsenter.Job("y", os.getpid)],
                                   parallel=2, timeout=5.0, deadline=time.monotonic() - 1)
    assert results == {name: {"ok": False, "stage": "schedule",
                              "error": "not started: the gather's overall time limit was reached"}
                       for name in ("x", "y")}
    assert no_children_left()


def test_a_worker_that_dies_is_reported_and_replaced():
    results = nsenter.run_parallel([nsenter.Job("dies", lambda: os._exit(3)), nsenter.Job("next", lambda: "ok")],
                                   parallel=1, timeout=10.0)
    assert results["dies"] == {"ok": False, "stage": "read",
                               "error": "the reader died without an answer (exit code 3)"}
    assert results["next"] == {"ok": True, "value": "ok"}
    assert no_children_left()


def test_start_parallel_reads_while_the_caller_works():
    run = nsenter.start_parallel([nsenter.Job("slow", lambda: time.sleep(0.3) or "done")], parallel=1, timeout=10.0)
    try:
        mine = sum(range(1000))  # the caller's own work meanwhile
    finally:
        results = run.wait()
    assert (mine, results["slow"]["value"]) == (499500, "done")
    assert run.wait() == results  # idempotent: the workers are gone
    assert no_children_left()


@root
def test_a_job_enters_a_real_namespace_and_the_worker_comes_back(unshared):
    other = unshared("-n", "-u")
    host_net = os.stat("/proc/self/ns/net").st_ino

    def enter():
        fds = nsenter.open_namespaces({"net": other.ns_path("net"), "uts": other.ns_path("uts")})
        try:
            nsenter.enter_namespaces(fds)
        finally:
            for fd in fds.values():
                os.close(fd)
        return [os.getpid(), os.stat("/proc/self/ns/net").st_ino]

    def where():
        return [os.getpid(), os.stat("/proc/self/ns/net").st_ino]

    results = nsenter.run_parallel([nsenter.Job("in", enter), nsenter.Job("back", where)], parallel=1, timeout=10.0)
    inside, back = results["in"]["value"], results["back"]["value"]
    assert inside[1] == other.ns_inode("net") != host_net
    assert back == [inside[0], host_net]  # the same worker, back in the host's network namespace
    assert os.stat("/proc/self/ns/net").st_ino == host_net  # the caller never moved


@root
def test_a_user_namespace_costs_the_worker_its_life():
    def into_user_ns():
        nsenter.unshare(nsenter.CLONE_NEWUSER)
        return os.getpid()

    results = nsenter.run_parallel([nsenter.Job("user", into_user_ns), nsenter.Job("next", os.getpid)],
                                   parallel=1, timeout=10.0)
    assert results["user"]["ok"] and results["next"]["ok"]
    assert results["user"]["value"] != results["next"]["value"]
    assert no_children_left()


@root
def test_entry_order_follows_who_owns_the_namespaces(unshared):
    rootless = unshared("-U", "-r", "-n")   # the net namespace belongs to the new user namespace
    fds = nsenter.open_namespaces({"user": rootless.ns_path("user"), "net": rootless.ns_path("net"),
                                   "uts": "/proc/self/ns/uts"})
    try:
        assert nsenter.entry_order(fds) == ["uts", "user", "net"]
        assert nsenter.owner_userns_inode(fds["net"]) == rootless.ns_inode("user")
    finally:
        for fd in fds.values():
            os.close(fd)
    plain = nsenter.open_namespaces({"net": "/proc/self/ns/net", "ipc": "/proc/self/ns/ipc"})
    try:
        assert nsenter.entry_order(plain) == ["ipc", "net"]  # nsenter's order
    finally:
        for fd in plain.values():
            os.close(fd)


def test_open_namespaces_names_the_missing_file_and_leaks_no_descriptor(tmp_path):
    before = len(os.listdir("/proc/self/fd"))
    missing = str(tmp_path / "gone" / "net")
    with pytest.raises(nsenter.NamespaceError, match="cannot open %s" % missing):
        nsenter.open_namespaces({"uts": "/proc/self/ns/uts", "net": missing})
    assert len(os.listdir("/proc/self/fd")) == before


def test_reads_as_a_new_process(tmp_path):
    (tmp_path / "a").write_text("1\n")
    (tmp_path / "b").write_text("two words\n")
    assert nsenter.read_files_as_new_process([str(tmp_path / "a"), str(tmp_path / "b")]) == [b"1", b"two words"]
    # Anything unusual is None: the caller falls back to a forked reader that names each error.
    assert nsenter.read_files_as_new_process([str(tmp_path / "a"), str(tmp_path / "missing")]) is None
    (tmp_path / "c").write_text("two\nlines\n")
    assert nsenter.read_files_as_new_process([str(tmp_path / "c")]) is None
    assert no_children_left()


def test_run_in_grandchild_returns_its_value_or_raises():
    assert nsenter.run_in_grandchild(os.getpid) != os.getpid()

    def fails():
        raise OSError("no such key")
    with pytest.raises(nsenter.NamespaceError, match="OSError: no such key"):
        nsenter.run_in_grandchild(fails)
    assert no_children_left()
