"""The reader pool of ``nsenter.run_parallel`` and the pid-namespace reads, through real namespaces.

Workers run job after job and go back to the host's namespaces in between; a job that leaves a
worker in another user namespace, a hung job and a dying worker each cost only that worker.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from ansible_collections.nsguard.sysctl.plugins.module_utils import nsenter, procsys, views
from tests.integration.nsfixtures import NsSet, spawn_set

pytestmark = pytest.mark.root


def _own_ns() -> dict:
    return {t: os.stat(nsenter._own_ns_path(t)).st_ino for t in nsenter._HOME_TYPES}


def _enter_and_report(pid: int, types: tuple):
    def target():
        fds = nsenter.open_namespaces({t: "/proc/%d/ns/%s" % (pid, t) for t in types})
        try:
            nsenter.enter_namespaces(fds)
        finally:
            for fd in fds.values():
                os.close(fd)
        return {"worker": os.getpid(), "somaxconn": procsys.read_key_file("/proc/sys/net/core/somaxconn")}
    return target


def _where_am_i():
    return {"worker": os.getpid(), "ns": _own_ns()}


@pytest.fixture
def two_sets():
    made = [spawn_set("echo %d > /proc/sys/net/core/somaxconn\n" % value) for value in (1111, 2222)]
    yield made
    for ns_set in made:
        ns_set.kill()


def test_workers_are_reused_and_go_back_to_the_host_between_jobs(two_sets):
    host = _own_ns()
    jobs = []
    for index in range(6):
        ns_set = two_sets[index % 2]
        jobs.append(nsenter.Job("enter-%d" % index, _enter_and_report(ns_set.inner_pid, ("net", "ipc", "uts", "pid"))))
        jobs.append(nsenter.Job("after-%d" % index, _where_am_i))
    answers = nsenter.run_parallel(jobs, parallel=2, timeout=10)

    assert all(a["ok"] for a in answers.values()), answers
    for index in range(6):
        assert answers["enter-%d" % index]["value"]["somaxconn"] == ("1111" if index % 2 == 0 else "2222")
        # The next job in a worker runs in the host's namespaces again (pid: for its children).
        assert answers["after-%d" % index]["value"]["ns"] == host
    workers = {a["value"]["worker"] for a in answers.values()}
    assert 1 <= len(workers) <= 2, workers  # 12 jobs, no new fork per job


def test_a_user_namespace_job_retires_its_worker_and_the_rest_go_on():
    host = _own_ns()

    def into_new_userns():
        nsenter.unshare(nsenter.CLONE_NEWUSER)
        return os.getpid()

    jobs = [nsenter.Job("user-%d" % i, into_new_userns) for i in range(3)]
    jobs += [nsenter.Job("after-%d" % i, _where_am_i) for i in range(4)]
    answers = nsenter.run_parallel(jobs, parallel=2, timeout=10)

    assert all(a["ok"] for a in answers.values()), answers
    user_workers = [answers["user-%d" % i]["value"] for i in range(3)]
    assert len(set(user_workers)) == 3  # no way back from a user namespace: one worker each
    for i in range(4):
        assert answers["after-%d" % i]["value"]["ns"] == host
        assert answers["after-%d" % i]["value"]["worker"] not in user_workers


def test_a_hung_job_and_a_dying_worker_cost_only_themselves():
    def hang():
        time.sleep(60)

    def die():
        os._exit(3)

    jobs = [nsenter.Job("hung", hang), nsenter.Job("dies", die)]
    jobs += [nsenter.Job("fine-%d" % i, os.getpid) for i in range(6)]
    started = time.monotonic()
    answers = nsenter.run_parallel(jobs, parallel=2, timeout=1.0)
    assert time.monotonic() - started < 10
    assert answers["hung"]["stage"] == "timeout"
    assert answers["dies"]["ok"] is False and "exit code 3" in answers["dies"]["error"]
    assert all(answers["fine-%d" % i]["ok"] for i in range(6))


def test_jobs_not_started_before_the_deadline_are_reported():
    jobs = [nsenter.Job("slow-%d" % i, lambda: time.sleep(0.4)) for i in range(6)]
    answers = nsenter.run_parallel(jobs, parallel=1, timeout=5, deadline=time.monotonic() + 0.5)
    stages = [answers["slow-%d" % i].get("stage") for i in range(6)]
    assert stages[0] is None and answers["slow-0"]["ok"]
    assert stages.count("schedule") >= 3, stages


def test_a_worker_keeps_its_descriptors_over_many_jobs():
    """Each job of sets sharing a network namespace goes back through the worker's one Home:
    no descriptors pile up in a reused worker (they once grew by five per job)."""
    def fd_count():
        return len(os.listdir("/proc/self/fd"))

    jobs = [nsenter.Job("group-%d" % i, views.make_group_reader([("s", fd_count)])) for i in range(60)]
    answers = nsenter.run_parallel(jobs, parallel=1, timeout=10)
    counts = [answers["group-%d" % i]["value"]["s"]["value"] for i in range(60)]
    assert counts[-1] == counts[1], counts


def test_a_worker_that_cannot_open_its_namespaces_says_so(monkeypatch):
    def refuse():
        raise OSError(13, "Permission denied")

    monkeypatch.setattr(nsenter, "Home", refuse)
    monkeypatch.setattr(nsenter, "_homes", {})
    answers = nsenter.run_parallel([nsenter.Job("a", os.getpid), nsenter.Job("b", os.getpid)], parallel=1, timeout=5)
    for name in ("a", "b"):
        assert answers[name]["ok"] is False and answers[name]["stage"] == "enter", answers
        assert "cannot open its own namespaces: Permission denied" in answers[name]["error"]


def test_a_long_job_is_cut_at_the_runs_deadline():
    """A job may take its own (longer) timeout, but not past the deadline of the whole run."""
    started = time.monotonic()
    answers = nsenter.run_parallel([nsenter.Job("group", lambda: time.sleep(30), timeout=60)],
                                   parallel=1, timeout=0.5, deadline=started + 1.5)
    elapsed = time.monotonic() - started
    assert answers["group"]["stage"] == "timeout" and "1.5 s" in answers["group"]["error"], answers
    assert elapsed < 5


@pytest.fixture
def pid_set():
    ns_set = spawn_set("echo 23456 > /proc/sys/kernel/pid_max\n")
    yield ns_set
    ns_set.kill()


@pytest.mark.parametrize("reader", ["spawned cat", "forked reader"])
def test_pid_keys_come_from_a_new_process_in_the_entered_pid_namespace(pid_set, reader, monkeypatch):
    if reader == "forked reader":
        monkeypatch.setattr(nsenter, "_cat", [None])  # no usable host cat: the fallback
    else:
        assert nsenter.host_cat() is not None

    def target():
        fds = nsenter.open_namespaces({"pid": "/proc/%d/ns/pid" % pid_set.inner_pid})
        try:
            nsenter.enter_namespaces(fds)
        finally:
            for fd in fds.values():
                os.close(fd)
        own = procsys.read_keys(["kernel.pid_max"])[0]  # this process: still the host's pid ns
        keys, unreadable = views.read_pid_keys(["kernel.pid_max", "kernel.ns_last_pid", "kernel.no_such_key"])
        return {"own": own, "keys": keys, "unreadable": unreadable}

    answer = nsenter.run_parallel([nsenter.Job("pid", target)], parallel=1, timeout=10)["pid"]
    assert answer["ok"], answer
    value = answer["value"]
    assert value["keys"]["kernel.pid_max"] == {"value": "23456", "mode": "0644"}
    assert value["own"]["kernel.pid_max"]["value"] == procsys.read_keys(["kernel.pid_max"])[0]["kernel.pid_max"]["value"]
    assert value["own"]["kernel.pid_max"]["value"] != "23456"
    assert "kernel.ns_last_pid" in value["keys"] and "kernel.no_such_key" not in value["keys"]


def test_spawned_reads_give_way_to_the_forked_reader_on_anything_unusual(tmp_path):
    two_lines = tmp_path / "two_lines"
    two_lines.write_text("a\nb\n")
    one = tmp_path / "one"
    one.write_text("7\n")
    assert nsenter.read_files_as_new_process([str(one)]) == [b"7"]
    assert nsenter.read_files_as_new_process([str(one), str(two_lines)]) is None
    assert nsenter.read_files_as_new_process([str(one), str(tmp_path / "missing")]) is None


PARAMS = dict(containers=True, probe=True, view="diff", include=[], exclude=[], timeout=5.0, gather_timeout=60.0,
              parallel=2, max_pids_per_set=20, runtime_cli=False, sysctl_d_dirs=[], sysctl_conf=None)


@pytest.fixture
def pod():
    """A pod-shaped group: a pause process owning a netns and three containers in it, each with its
    own uts and pid namespaces (as the kubelet makes them). The outer ``unshare`` of each container
    only sits in the pause container's netns, so it joins the pause set: four sets in all."""
    pause = spawn_set("echo 3456 > /proc/sys/net/core/somaxconn\n", flags=("-n",))
    procs = []
    try:
        for i in range(3):
            script = f"hostname nsg-pod-c{i}; echo ready; exec sleep 600"
            procs.append(subprocess.Popen(
                ["nsenter", "-t", str(pause.inner_pid), "-n", "unshare", "-p", "-f", "--kill-child",
                 "unshare", "-u", "sh", "-c", script], stdout=subprocess.PIPE, start_new_session=True))
        for proc in procs:
            assert proc.stdout.readline().startswith(b"ready")
        yield pause, procs
    finally:
        for proc in procs:
            NsSet(proc, 0, ()).kill()  # the whole process group, reaped
            proc.stdout.close()
        pause.kill()


def _sets_in(facts: dict, net: int) -> list:
    return [s for s in facts["namespace_sets"] if s["ns"]["net"] == net]


def test_a_pods_network_namespace_is_read_once_for_all_its_containers(pod, tmp_path, monkeypatch):
    from ansible_collections.nsguard.sysctl.plugins.modules import sysctl_facts

    pause, dummy = pod
    log = tmp_path / "net-tree-reads"
    real = procsys.read_tree

    def logged(root=procsys.PROC_SYS, wanted=None, subdirs=None, with_inodes=False):
        if subdirs == ["net"]:  # workers are forks of this process: they append to one file
            with open(log, "a") as handle:
                handle.write("%d\n" % os.stat("/proc/self/ns/net").st_ino)
        return real(root, wanted=wanted, subdirs=subdirs, with_inodes=with_inodes)

    monkeypatch.setattr(procsys, "read_tree", logged)
    facts = sysctl_facts.gather(dict(PARAMS))
    members = _sets_in(facts, pause.ns["net"])
    hostnames = sorted((s["view"]["differs"].get("kernel.hostname") or {}).get("container", "") for s in members)
    assert len(members) == 4, [s["id"] for s in members]
    assert hostnames == ["", "nsg-pod-c0", "nsg-pod-c1", "nsg-pod-c2"], hostnames
    for member in members:
        assert member["errors"] == [], member["errors"]
        assert member["view"]["differs"]["net.core.somaxconn"]["container"] == "3456"
        assert member["view"]["interfaces"] == ["lo"]
    reads = log.read_text().split()
    assert reads.count(str(pause.ns["net"])) == 1, reads
    assert len(reads) == len(set(reads)), "a network namespace was read twice"


def test_a_pod_member_that_vanishes_costs_only_itself(pod, monkeypatch):
    from ansible_collections.nsguard.sysctl.plugins.modules import sysctl_facts

    pause, procs = pod
    victim = procs[1]
    real = views.make_reader

    def make_reader_then_kill(ns_set, *args, **kwargs):
        reader = real(ns_set, *args, **kwargs)
        if "uts" in ns_set["differs_from_host"] and set(ns_set["pids"]) & set(_children(victim.pid)):
            os.killpg(victim.pid, signal.SIGKILL)  # the container exits between the scan and its read
        return reader

    monkeypatch.setattr(views, "make_reader", make_reader_then_kill)
    facts = sysctl_facts.gather(dict(PARAMS, probe=False))
    members = _sets_in(facts, pause.ns["net"])
    broken = [s for s in members if s["view"] is None]
    assert len(broken) == 1 and broken[0]["errors"][0]["stage"] == "vanished", [s["errors"] for s in members]
    fine = [s for s in members if s["view"] is not None]
    assert len(fine) == 3  # the pause set (with the victim's outer unshare gone) and two containers
    for member in fine:
        assert member["view"]["differs"]["net.core.somaxconn"]["container"] == "3456"


def _children(pid: int) -> list:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/task/{current}/children") as handle:
                kids = [int(x) for x in handle.read().split()]
        except OSError:
            continue
        found.extend(kids)
        todo.extend(kids)
    return found


def _own_children() -> set:
    return set(_children(os.getpid()))  # workers fork nothing of their own between jobs


def test_a_started_run_works_while_the_caller_does_and_leaves_no_worker():
    """start_parallel forks and hands out the jobs at once (the module starts the probe before
    it reads the host); wait() collects; close() on an abandoned run kills and reaps busy workers."""
    before = _own_children()
    run = nsenter.start_parallel([nsenter.Job(i, time.monotonic) for i in range(3)], parallel=3, timeout=5.0)
    assert len(_own_children() - before) == 3  # all three forked before wait()
    time.sleep(0.3)  # the caller's own work, meanwhile
    waited = time.monotonic()
    results = run.wait()
    assert sorted(results) == [0, 1, 2] and all(r["ok"] for r in results.values())
    assert all(r["value"] < waited for r in results.values())  # each job ran before wait() was called
    assert _own_children() == before
    abandoned = nsenter.start_parallel([nsenter.Job("slow", lambda: time.sleep(30))], parallel=1, timeout=60.0)
    assert len(_own_children() - before) == 1
    abandoned.close()
    assert _own_children() == before
