#!/usr/bin/env python
"""Gather benchmark (issue 2): ``sysctl_facts.gather()`` against ``sysctl -a`` and an nsenter loop.

    .venv/bin/python bench/bench_gather.py [--sizes 50,100] [--repeat 3] [--summary FILE]

Run as root. From one run, in this one process, it prints:

(a) the host-only gather (``containers=False``; probe off, then on) against ``sysctl -a >/dev/null``;
(b) for each size N (default 50 and 100) the gather with containers on (probe off/on x
    ``runtime_cli`` off/on) against the shell loop
    ``for p in PIDS; do nsenter -t $p -n -i -u sysctl -a >/dev/null; done`` over the N sets
    this script made, with the targets of issue 2 for the largest N: under 1 s and >= 4x faster;
(c) the size of the JSON facts (as ``json.dumps`` writes them) for the largest N, diff and full view;
(d) the largest N again, shaped as Kubernetes pods: N/4 network namespaces, each shared by four
    containers with their own ipc, uts and pid namespaces, against the loop over the containers.

Every figure is the median of ``--repeat`` runs (the individual runs are printed too). In (b)
one unmeasured round warms the dentry cache, then the loop and the four gathers take turns,
round after round, so both sides meet the same cache and the same competing load.

The script makes its own namespace sets: ``unshare -p -f --kill-child unshare -n -i -u sh -c ...``,
each with a distinctive ``net.core.somaxconn`` and hostname. The outer ``unshare`` only makes the
pid namespace (its own namespaces stay the host's, so it is not a set itself); the inner one is
pid 1 of that namespace and unshares net, ipc and uts: one process, one set, four namespaces
differing from the host. The outer ``unshare`` dies with this script (``PR_SET_PDEATHSIG``, so
also on SIGKILL) and takes pid 1 with it (``--kill-child``); on a normal exit, an exception,
Ctrl-C or SIGTERM every set is killed and reaped before the script returns. Sets on the host
that the script did not make are counted but ignored when checking what the gather found.

Exit status: 0 targets met, 1 targets missed, 2 the gather did not find (or could not read) the
sets this script made, or the script could not make them.
"""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEV = REPO / ".venv" / "dev-collections"
if not (DEV / "ansible_collections" / "nsguard" / "sysctl").exists():
    (DEV / "ansible_collections" / "nsguard").mkdir(parents=True, exist_ok=True)
    try:
        (DEV / "ansible_collections" / "nsguard" / "sysctl").symlink_to(REPO)
    except FileExistsError:  # made meanwhile by a test run
        pass
sys.path.insert(0, str(DEV))
sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

from ansible_collections.nsguard.sysctl.plugins.modules import sysctl_facts  # noqa: E402
from tests.integration.nsfixtures import NsSet, read_ns  # noqa: E402

TARGET_SECONDS = 1.0
TARGET_RATIO = 4.0
COMPARED = ("net", "ipc", "uts", "user", "pid")
SOMAXCONN_BASE = 20000  # set i gets 20000 + i: a value no default or other test uses
PR_SET_PDEATHSIG = 1
SET_LIFETIME = 3600  # seconds; only matters if every other clean-up failed


# ---------------------------------------------------------------------------------------------
# The namespace sets this script makes
# ---------------------------------------------------------------------------------------------

def _die_with_parent() -> None:
    """preexec_fn: the outer unshare gets SIGKILL when this script dies, however it dies."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class BenchSet:
    """One namespace set: the outer ``unshare`` (our child) and pid 1 inside (its child).

    ``pod``: the set joins that set's network namespace (``nsenter -n``) instead of making its
    own, as a Kubernetes pod's containers join the pause container's; the somaxconn it checks is
    then the pod's.
    """

    def __init__(self, index: int, tag: str, pod: "BenchSet | None" = None) -> None:
        self.index = index
        self.somaxconn = pod.somaxconn if pod else SOMAXCONN_BASE + index
        self.hostname = "nsgbench-%s-%d" % (tag, index)
        inner = ["unshare", "-i", "-u"] if pod else ["unshare", "-n", "-i", "-u"]
        script = "hostname %s && exec sleep %d" % (self.hostname, SET_LIFETIME)
        if not pod:
            script = "echo %d > /proc/sys/net/core/somaxconn && %s" % (self.somaxconn, script)
        join = ["nsenter", "-t", str(pod.inner), "-n"] if pod else []
        self.proc = subprocess.Popen(
            join + ["unshare", "-p", "-f", "--kill-child"] + inner + ["sh", "-c", script],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True, preexec_fn=_die_with_parent)
        self.inner = None  # type: int | None
        self.ns = None  # type: dict | None

    def poll_ready(self, host_ns: dict) -> bool:
        """True once pid 1 inside has set its values and exec'd ``sleep`` in its own namespaces."""
        if self.ns is not None:
            return True
        if self.proc.poll() is not None:
            raise RuntimeError("set %d exited early (rc %s): %s"
                               % (self.index, self.proc.returncode, self.proc.stderr.read().decode().strip()))
        try:
            with open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)) as handle:
                children = handle.read().split()
            if not children:
                return False
            inner = int(children[0])
            with open("/proc/%d/comm" % inner) as handle:
                if handle.read().strip() != "sleep":
                    return False
            ns = read_ns(inner)
        except (OSError, ValueError):
            return False
        if any(ns[t] == host_ns[t] for t in ("net", "ipc", "uts", "pid")):
            return False
        self.inner, self.ns = inner, ns
        return True

    def kill(self) -> None:
        NsSet(self.proc, self.inner or 0, ()).kill()  # SIGKILL to the session, then reap
        if self.proc.stderr:
            self.proc.stderr.close()


def make_sets(count: int, start: int, tag: str, host_ns: dict, timeout: float = 60.0, pods: list = None) -> list:
    """``count`` sets; with ``pods``, set i joins the network namespace of ``pods[i % len(pods)]``."""
    made = [BenchSet(start + i, tag, pods[i % len(pods)] if pods else None) for i in range(count)]
    SETS.extend(made)
    deadline = time.monotonic() + timeout
    waiting = list(made)
    while waiting:
        waiting = [s for s in waiting if not s.poll_ready(host_ns)]
        if waiting and time.monotonic() > deadline:
            raise RuntimeError("%d of %d sets not ready within %.0f s" % (len(waiting), count, timeout))
        if waiting:
            time.sleep(0.02)
    return made


SETS = []  # every set made, for clean-up


def holders(net_inodes: set) -> int:
    """How many processes still live in one of these network namespaces."""
    count = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if read_ns(int(name))["net"] in net_inodes:
                    count += 1
            except (OSError, ValueError):
                continue
    return count


def cleanup(wait: float = 10.0) -> int:
    """Kill and reap every set; return how many processes are still in their namespaces.

    Pid 1 of each set is not our child (the outer unshare is): the kernel tears its namespace
    down after SIGKILL a moment later, so wait for that instead of reporting a false leak.
    """
    for ns_set in SETS:
        ns_set.kill()
    ours = {s.ns["net"] for s in SETS if s.ns}
    SETS.clear()
    deadline = time.monotonic() + wait
    left = holders(ours) if ours else 0
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = holders(ours)
    return left


def _terminate(signum, _frame):
    raise KeyboardInterrupt("signal %d" % signum)


# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------

def default_params() -> dict:
    """The module's defaults, from its DOCUMENTATION (what a task without options runs with)."""
    options = yaml.safe_load(sysctl_facts.DOCUMENTATION)["options"]
    return {name: spec.get("default") for name, spec in options.items()}


def cpu_seconds() -> float:
    """CPU time of this process and its reaped children (the gather's forked readers, the
    loop's bash, nsenter and sysctl): unlike wall time, it does not grow when other work
    competes for the two cores."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class Timing:
    """Median wall and CPU seconds of ``repeat`` runs, and the last run's result."""

    def __init__(self, func, repeat: int) -> None:
        self.runs, self.cpus, self.result = [], [], None
        for dummy in range(repeat):
            self.add(func)
        self.summarize()

    def add(self, func) -> None:
        cpu0, started = cpu_seconds(), time.perf_counter()
        self.result = func()
        self.runs.append(time.perf_counter() - started)
        self.cpus.append(cpu_seconds() - cpu0)

    def summarize(self) -> None:
        self.wall = statistics.median(self.runs) if self.runs else float("nan")
        self.cpu = statistics.median(self.cpus) if self.cpus else float("nan")

    @classmethod
    def of(cls, funcs: list) -> list:
        """One run of each function, in turn: a round."""
        return [cls(func, 1) for func in funcs]

    @classmethod
    def merge(cls, timings: list) -> "Timing":
        """The runs of several one-run timings of the same thing, as one timing."""
        merged = cls(None, 0)
        for timing in timings:
            merged.runs.extend(timing.runs)
            merged.cpus.extend(timing.cpus)
            merged.result = timing.result
        merged.summarize()
        return merged

    def __str__(self) -> str:
        return "%7.3f s (cpu %6.3f s) [%s]" % (self.wall, self.cpu, " ".join("%.3f" % r for r in self.runs))


def load_note() -> str:
    load = os.getloadavg()[0]
    cpus = os.cpu_count() or 1
    note = "load average %.1f on %d CPU(s)" % (load, cpus)
    if load > cpus:
        note += " - other work competes for the CPUs: wall times are inflated, compare the cpu figures"
    return note


def shell(script: str) -> None:
    subprocess.run(["bash", "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def nsenter_loop(pids: list):
    script = "for p in %s; do nsenter -t $p -n -i -u sysctl -a >/dev/null; done" % " ".join(map(str, pids))
    return lambda: shell(script)


def check_found(facts: dict, made: list) -> tuple:
    """``(found, verified, foreign)``: our sets the gather listed, those whose view shows our
    somaxconn and hostname, and the sets on the host we did not make (ignored)."""
    by_ns = {}
    for ns_set in facts["namespace_sets"]:
        by_ns[tuple(ns_set["ns"].get(t) for t in COMPARED)] = ns_set
    found = verified = 0
    ours = set()
    for bench_set in made:
        key = tuple(bench_set.ns[t] for t in COMPARED)
        ns_set = by_ns.get(key)
        if ns_set is None:
            continue
        ours.add(key)
        found += 1
        differs = (ns_set.get("view") or {}).get("differs") or {}
        somaxconn = (differs.get("net.core.somaxconn") or {}).get("container")
        hostname = (differs.get("kernel.hostname") or {}).get("container")
        if somaxconn == str(bench_set.somaxconn) and hostname == bench_set.hostname:
            verified += 1
    return found, verified, len(by_ns) - len(ours)


def our_set_bytes(facts: dict, made: list) -> int:
    keys = {tuple(s.ns[t] for t in COMPARED) for s in made}
    return sum(len(json.dumps(s)) for s in facts["namespace_sets"] if tuple(s["ns"].get(t) for t in COMPARED) in keys)


def kib(n: int) -> str:
    return "%.1f KiB" % (n / 1024.0)


DEFAULTS_CONFIG = "probe=True,runtime_cli=True"


def run(args: argparse.Namespace, summary: dict) -> int:
    params = default_params()
    host_ns = sysctl_facts.nsscan.read_ns("self", types=COMPARED)
    repeat = args.repeat
    print("gather benchmark: %d CPU(s) usable, kernel %s, python %s, median of %d run(s) each"
          % (sysctl_facts.cpu_count(), os.uname().release, sys.version.split()[0], repeat))
    # sysctl_facts imports RuntimeIndex only where it identifies sets (a host-only run needs none)
    from ansible_collections.nsguard.sysctl.plugins.module_utils.runtimes import RuntimeIndex
    print("runtimes module: %s (the real one)" % RuntimeIndex.__module__)
    print("start: %s" % load_note())
    print("columns: median wall time (median CPU time of this process + reaped children) [each run's wall]")
    ok_found = True

    # (a) host only
    base = Timing(lambda: shell("sysctl -a >/dev/null"), repeat)
    print("\n(a) host only")
    print("  %-40s %s" % ("baseline: sysctl -a >/dev/null", base))
    summary["host"] = {"sysctl_a": {"wall": base.wall, "cpu": base.cpu}}
    for probe in (False, True):
        p = dict(params, containers=False, probe=probe)
        gathered = Timing(lambda: sysctl_facts.gather(p), repeat)
        print("  %-40s %s  ratio to sysctl -a: %.1fx the time (%d keys)"
              % ("gather(containers=False, probe=%s)" % probe, gathered, gathered.wall / base.wall,
                 len(gathered.result["host"]["keys"])))
        summary["host"]["probe=%s" % probe] = {"wall": gathered.wall, "cpu": gathered.cpu,
                                               "ratio": gathered.wall / base.wall}

    # (b) host + N sets
    tag = "%x" % (os.getpid() & 0xffff)
    made = []
    sizes = sorted(set(args.sizes))
    largest = sizes[-1]
    print("\n(b) host + N namespace sets made by this script (net+ipc+uts+pid each, user shared)")
    summary["sets"] = {}
    verdicts = {}
    for size in sizes:
        started = time.perf_counter()
        made.extend(make_sets(size - len(made), len(made), tag, host_ns))
        print("  N=%d: made and ready in %.1f s; %s" % (size, time.perf_counter() - started, load_note()))
        # One unmeasured round first: the first walk of a new namespace's /proc/sys creates its
        # dentries, and every later lookup walks hash chains that hold them (measured: a cold loop
        # 2.6 s, warm ones 4.1-4.4 s with 100 sets). Then the loop and the gathers take turns,
        # round after round, so that both meet the same cache and the same competing load.
        configs = [(probe, cli) for probe in (False, True) for cli in (False, True)]
        loop_run = nsenter_loop([s.inner for s in made])
        gathers = {c: (lambda c=c: sysctl_facts.gather(dict(params, probe=c[0], runtime_cli=c[1]))) for c in configs}
        loop_run()
        gathers[(True, True)]()
        rounds = [Timing.of([loop_run] + [gathers[c] for c in configs]) for dummy in range(repeat)]
        loop = Timing.merge([r[0] for r in rounds])
        print("    %-40s %s" % ("baseline: nsenter loop (N x sysctl -a)", loop))
        entry = {"loop": {"wall": loop.wall, "cpu": loop.cpu}, "gather": {}}
        summary["sets"][str(size)] = entry
        for number, (probe, cli) in enumerate(configs, start=1):
            gathered = Timing.merge([r[number] for r in rounds])
            found, verified, foreign = check_found(gathered.result, made)
            ratio = loop.wall / gathered.wall
            line = ("    %-40s %s  speed-up over the loop: %.2fx (cpu %.2fx); found %d/%d sets, verified %d/%d"
                    % ("gather(probe=%s, runtime_cli=%s)" % (probe, cli), gathered, ratio,
                       loop.cpu / gathered.cpu if gathered.cpu else float("nan"),
                       found, len(made), verified, len(made)))
            if foreign:
                line += "; %d set(s) not ours on the host (gathered too, not checked)" % foreign
            print(line)
            config = "probe=%s,runtime_cli=%s" % (probe, cli)
            entry["gather"][config] = {"wall": gathered.wall, "cpu": gathered.cpu, "ratio": ratio,
                                       "found": found, "verified": verified, "foreign": foreign}
            if verified != len(made):
                ok_found = False
                print("    !! the gather missed or misread %d of our sets; first errors: %s"
                      % (len(made) - verified, json.dumps(gathered.result["errors"][:5])))
            if size == largest:
                verdicts[config] = (gathered.wall < TARGET_SECONDS, ratio >= TARGET_RATIO)

    print("\n  targets for host + %d sets: < %.1f s and >= %.0fx faster than the loop"
          % (largest, TARGET_SECONDS, TARGET_RATIO))
    for config, (fast, far) in verdicts.items():
        print("    %-34s < %.1f s: %-6s >= %.0fx: %s%s" % (config, TARGET_SECONDS, "MET" if fast else "MISSED",
                                                           TARGET_RATIO, "MET" if far else "MISSED",
                                                           "   (module defaults)" if config == DEFAULTS_CONFIG else ""))
    summary["targets"] = {c: {"under_1s": v[0], "ratio_4x": v[1]} for c, v in verdicts.items()}

    # (c) facts size for the largest N
    print("\n(c) size of the JSON facts, host + %d sets (json.dumps, as the module returns them)" % largest)
    summary["bytes"] = {"host_only": len(json.dumps(sysctl_facts.gather(dict(params, containers=False))))}
    print("  host only (probe on)   %s" % kib(summary["bytes"]["host_only"]))
    for view in ("diff", "full"):
        facts = sysctl_facts.gather(dict(params, view=view))
        total = len(json.dumps(facts))
        ours = our_set_bytes(facts, made)
        print("  view=%-4s  total %-12s of which our %d sets %-12s (%.1f KiB per set)"
              % (view, kib(total), largest, kib(ours), ours / 1024.0 / largest))
        summary["bytes"][view] = {"total": total, "our_sets": ours, "per_set": ours / largest}

    # (d) pod-shaped: the same number of sets, four containers per network namespace
    pods_wanted = max(1, largest // 4)
    print("\n(d) host + %d sets shaped as %d pods of 4 containers sharing a network namespace" % (largest, pods_wanted))
    cleanup()
    pods = make_sets(pods_wanted, 0, tag + "p", host_ns)
    members = make_sets(largest, pods_wanted, tag + "c", host_ns, pods=pods)
    loop_run = nsenter_loop([s.inner for s in members])

    def gather():
        return sysctl_facts.gather(params)  # the defaults, as in (b)

    loop_run()
    gather()
    rounds = [Timing.of([loop_run, gather]) for dummy in range(repeat)]
    loop, gathered = Timing.merge([r[0] for r in rounds]), Timing.merge([r[1] for r in rounds])
    found, verified, foreign = check_found(gathered.result, members)
    print("    %-40s %s" % ("baseline: nsenter loop (N x sysctl -a)", loop))
    print("    %-40s %s  speed-up over the loop: %.2fx (cpu %.2fx); found %d/%d containers, verified %d/%d"
          % ("gather (defaults)", gathered, loop.wall / gathered.wall, loop.cpu / gathered.cpu,
             found, len(members), verified, len(members)))
    summary["pods"] = {"pods": pods_wanted, "containers": len(members), "loop": {"wall": loop.wall, "cpu": loop.cpu},
                       "gather": {"wall": gathered.wall, "cpu": gathered.cpu, "ratio": loop.wall / gathered.wall,
                                  "found": found, "verified": verified}}
    if verified != len(members):
        ok_found = False
    print("\nend: %s" % load_note())

    if not ok_found:
        print("RESULT the gather did not find or read every set this script made")
        return 2
    fast, far = verdicts[DEFAULTS_CONFIG]
    print("RESULT module defaults, host + %d sets: %s" % (largest, "targets met" if fast and far else "targets MISSED"))
    return 0 if fast and far else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",") if x], default=[50, 100],
                        help="comma-separated numbers of namespace sets (default 50,100)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the median is printed")
    parser.add_argument("--summary", help="also write the figures as JSON to this file")
    args = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("run as root: the bench makes namespaces and the gather enters them")
    if not args.sizes or min(args.sizes) < 1 or args.repeat < 1:
        parser.error("--sizes needs positive numbers and --repeat at least 1")
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    summary = {"sizes": sorted(args.sizes), "repeat": args.repeat}
    rc = 2
    try:
        rc = run(args, summary)
    except KeyboardInterrupt as exc:
        print("\ninterrupted (%s): cleaning up" % (exc or "Ctrl-C"), file=sys.stderr)
        rc = 130
    except RuntimeError as exc:
        print("bench failed: %s" % exc, file=sys.stderr)
        rc = 2
    finally:
        left = cleanup()
        summary["left_behind"] = left
        print("clean-up: every set killed and reaped, %d process(es) left in our namespaces" % left)
        if args.summary:
            summary["rc"] = rc
            with open(args.summary, "w") as handle:
                json.dump(summary, handle, indent=1)
    return rc


if __name__ == "__main__":
    sys.exit(main())
