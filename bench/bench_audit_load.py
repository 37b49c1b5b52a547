#!/usr/bin/env python
"""Load benchmark for the whole audit: nsguard.sysctl.audit then nsguard.sysctl.report over an
inventory of N localhost aliases (``ansible_connection=local``), ``forks`` at a time.

    .venv/bin/python bench/bench_audit_load.py [--hosts 200] [--forks 20] [--keep DIR]

Root is needed (the facts module enters namespace sets). Three real ``ansible-playbook`` runs,
in one working directory with its own ``ansible.cfg`` (forks, a ``jsonfile`` fact cache):

1. **baseline**: the same inventory running ``ansible.builtin.setup`` with ``gather_subset: min``
   (what any play pays to reach N hosts: a fork, a module shipped and run per host);
2. **audit**: ``nsguard.sysctl.audit`` as ``scripts/run-audit.sh`` runs it (fleet reports
   written by the role's ``run_once`` step), filling the fact cache;
3. **report**: ``nsguard.sysctl.report`` rebuilding the reports from that cache.

For each run: wall time, CPU time (user + system of ``ansible-playbook`` and every process under it,
from ``getrusage(RUSAGE_CHILDREN)``: the figure to compare when other work loads the machine) and
peak memory, sampled from ``/proc`` every 0.2 s over the process
tree of ``ansible-playbook``. Two memory figures: the **controller** (ansible-playbook and its
worker forks: processes whose command line is ``ansible-playbook``; summed as RSS, which counts
copy-on-write pages shared between the forks once per fork, and as PSS from
``smaps_rollup``, which splits them) and the **tree** (the controller plus the module
processes the local connection starts; RSS). Peak of the sums over the samples, so a short
spike between two samples may be missed. Then the ratios audit / baseline and report /
baseline (wall and CPU), the fact cache's size and the reports' sizes, and a check of the result: every host
in fleet.json with status ok, and the same findings on every host (they are all this machine;
namespace sets that came or went during the run, other people's tests, are left out of the
comparison and counted).

Exit status: 0 when both runs completed with a correct report, 1 otherwise.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parent.parent
DEV = REPO / ".venv" / "dev-collections"
BIN = Path(sys.executable).parent
SAMPLE_SECONDS = 0.2


def _ensure_dev_link() -> None:
    link = DEV / "ansible_collections" / "nsguard" / "sysctl"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(REPO)


# --------------------------------------------------------------------------- memory sampling

def _children_map() -> Dict[int, List[int]]:
    """ppid -> pids, from one pass over /proc (processes that vanish meanwhile are skipped)."""
    children: Dict[int, List[int]] = collections.defaultdict(list)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry.name, "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        rest = stat[stat.rindex(b")") + 2:].split()
        children[int(rest[1])].append(int(entry.name))
    return children


def _tree(root: int) -> List[int]:
    children = _children_map()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def _kib(path: str, field_name: str) -> Optional[int]:
    try:
        with open(path, "rb") as handle:
            for line in handle:
                if line.startswith(field_name):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return 0


def _is_controller(pid: int) -> bool:
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            argv = handle.read().split(b"\0")
    except OSError:
        return False
    return any(arg.endswith(b"ansible-playbook") for arg in argv[:2])


@dataclass
class Peaks:
    controller_rss: int = 0     # KiB
    controller_pss: int = 0
    tree_rss: int = 0
    controller_procs: int = 0
    tree_procs: int = 0
    samples: int = 0


def sample_once(root: int, peaks: Peaks) -> None:
    c_rss = c_pss = t_rss = c_n = 0
    pids = _tree(root)
    for pid in pids:
        rss = _kib("/proc/%d/status" % pid, b"VmRSS:")
        if rss is None:
            continue
        t_rss += rss
        if _is_controller(pid):
            c_n += 1
            c_rss += rss
            c_pss += _kib("/proc/%d/smaps_rollup" % pid, b"Pss:") or 0
    peaks.controller_rss = max(peaks.controller_rss, c_rss)
    peaks.controller_pss = max(peaks.controller_pss, c_pss)
    peaks.tree_rss = max(peaks.tree_rss, t_rss)
    peaks.controller_procs = max(peaks.controller_procs, c_n)
    peaks.tree_procs = max(peaks.tree_procs, len(pids))
    peaks.samples += 1


@dataclass
class Run:
    name: str
    rc: int
    seconds: float
    peaks: Peaks
    cpu: float = 0.0   # user + system seconds of the whole process tree
    stdout: str = ""
    stderr: str = ""
    extra: Dict[str, object] = field(default_factory=dict)


def run_sampled(name: str, argv: List[str], workdir: Path, env: Dict[str, str], timeout: float = 3600) -> Run:
    """Run ``argv`` in ``workdir``, sampling its process tree's memory until it exits."""
    out_path, err_path = workdir / ("%s.stdout" % name), workdir / ("%s.stderr" % name)
    peaks = Peaks()
    with open(out_path, "w") as out, open(err_path, "w") as err:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.monotonic()
        proc = subprocess.Popen(argv, cwd=str(workdir), env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        done = threading.Event()

        def sampler() -> None:
            while not done.is_set():
                sample_once(proc.pid, peaks)
                done.wait(SAMPLE_SECONDS)
        thread = threading.Thread(target=sampler, daemon=True)
        thread.start()
        try:
            rc = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        seconds = time.monotonic() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        done.set()
        thread.join()
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(name, rc, seconds, peaks, cpu, out_path.read_text(errors="replace"), err_path.read_text(errors="replace"))


# --------------------------------------------------------------------------- the inventory and runs

def make_workdir(workdir: Path, hosts: int, forks: int) -> Path:
    """inventory.yml (``hNNN`` aliases of localhost), ansible.cfg (forks, jsonfile fact cache)."""
    workdir.mkdir(parents=True, exist_ok=True)
    inventory = {"all": {"hosts": {"h%03d" % i: None for i in range(hosts)},
                         "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}
    (workdir / "inventory.yml").write_text(json.dumps(inventory, indent=1))
    (workdir / "ansible.cfg").write_text("\n".join([
        "[defaults]",
        "forks = %d" % forks,
        "host_key_checking = False",
        "retry_files_enabled = False",
        "fact_caching = ansible.builtin.jsonfile",
        "fact_caching_connection = %s" % (workdir / "facts"),
        "fact_caching_timeout = 86400",
        "", ""]))
    (workdir / "baseline.yml").write_text(json.dumps([{
        "name": "baseline", "hosts": "all", "gather_facts": False,
        "tasks": [{"name": "setup min", "ansible.builtin.setup": {"gather_subset": ["min"]}}]}]))
    return workdir


def playbook_env(workdir: Path) -> Dict[str, str]:
    env = dict(os.environ)
    env.update({
        "ANSIBLE_CONFIG": str(workdir / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": os.pathsep.join(
            [str(DEV)] + [p for p in os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep) if p]),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_DEPRECATION_WARNINGS": "0",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
        "PATH": "%s%s%s" % (BIN, os.pathsep, os.environ.get("PATH", "")),
    })
    return env


def playbook_argv(workdir: Path, playbook: str, *extra: str) -> List[str]:
    return [str(BIN / "ansible-playbook"), "-i", str(workdir / "inventory.yml"), playbook, *extra]


def run_baseline(workdir: Path) -> Run:
    # its own fact cache: setup's facts must not count in the audit's cache size
    env = dict(playbook_env(workdir), ANSIBLE_CACHE_PLUGIN_CONNECTION=str(workdir / "facts-baseline"))
    return run_sampled("baseline", playbook_argv(workdir, str(workdir / "baseline.yml")), workdir, env)


def task_times(stdout: str, top: int = 6) -> List[Tuple[str, float]]:
    """The slowest tasks from ansible.posix.profile_tasks' recap (enabled for every run)."""
    out = []
    recap = stdout.split("TASKS RECAP", 1)[-1] if "TASKS RECAP" in stdout else ""
    for line in recap.splitlines():
        head, sep, tail = line.rpartition(" ")
        if sep and tail.endswith("s") and head.rstrip().endswith("-"):
            try:
                out.append((head.rstrip(" -").split(" : ", 1)[-1], float(tail[:-1])))
            except ValueError:
                continue
    return out[:top]


def run_audit(workdir: Path, audit_vars: Optional[Dict[str, object]] = None) -> Run:
    """The audit as scripts/run-audit.sh runs it, reports in ``workdir/reports``."""
    extra = {"nsguard_sysctl_report_dir": str(workdir / "reports"), "nsguard_sysctl_fail_on": "never"}
    extra.update(audit_vars or {})
    (workdir / "audit-vars.json").write_text(json.dumps(extra))
    run = run_sampled("audit", playbook_argv(workdir, "nsguard.sysctl.audit", "-e", "@%s" % (workdir / "audit-vars.json")),
                      workdir, playbook_env(workdir))
    run.extra["fact_cache_bytes"] = dir_bytes(workdir / "facts")
    run.extra["fact_cache_files"] = len(list((workdir / "facts").glob("*"))) if (workdir / "facts").is_dir() else 0
    return run


def run_report(workdir: Path) -> Run:
    run = run_sampled("report", playbook_argv(workdir, "nsguard.sysctl.report",
                                              "-e", "nsguard_sysctl_report_dir=%s" % (workdir / "cache-reports")),
                      workdir, playbook_env(workdir))
    return run


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


# --------------------------------------------------------------------------- checking the report

def _finding_key(finding: Dict[str, object]) -> Tuple:
    return (finding.get("rule"), finding.get("set_id"), finding.get("key"), finding.get("severity"))


def check_report(fleet_json: Path, hosts: List[str]) -> Tuple[List[str], Dict[str, object]]:
    """Problems with a fleet.json of ``hosts`` (all this machine): every host present and ok,
    and the same findings on each, leaving out namespace sets that were not seen by every host."""
    problems: List[str] = []
    model = json.loads(fleet_json.read_text())
    rows = {row["name"]: row for row in model["hosts"]}
    missing = sorted(set(hosts) - set(rows))
    not_ok = sorted(h for h in hosts if h in rows and rows[h]["status"] != "ok")
    if missing:
        problems.append("%d hosts missing from %s: %s" % (len(missing), fleet_json.name, ", ".join(missing[:10])))
    if not_ok:
        problems.append("%d hosts not ok: %s" % (len(not_ok), ", ".join(
            "%s=%s" % (h, rows[h]["status"]) for h in not_ok[:10])))
    per_host: Dict[str, List[Tuple]] = {h: [] for h in hosts}
    for finding in model["findings"]:
        if finding.get("host") in per_host:
            per_host[finding["host"]].append(_finding_key(finding))
    sets_by_host = {h: {k[1] for k in keys if k[1]} for h, keys in per_host.items()}
    common = set.intersection(*sets_by_host.values()) if sets_by_host else set()
    transient = set.union(*sets_by_host.values()) - common if sets_by_host else set()
    shapes = collections.Counter()
    for host, keys in per_host.items():
        shapes[tuple(sorted(k for k in keys if k[1] is None or k[1] in common))] += 1
    if len(shapes) > 1:
        sizes = sorted((len(shape), count) for shape, count in shapes.items())
        problems.append("findings differ between hosts: %d variants (findings, hosts): %s" % (len(shapes), sizes))
    stable = len(shapes.most_common(1)[0][0]) if shapes else 0
    return problems, {"hosts": len(rows), "findings": len(model["findings"]), "findings_per_host": stable,
                      "transient_sets": len(transient)}


# --------------------------------------------------------------------------- main

def _mib(kib: int) -> str:
    return "%.0f MiB" % (kib / 1024.0)


def describe(run: Run) -> str:
    p = run.peaks
    line = ("%-8s rc=%d  wall %6.1f s  cpu %6.1f s  controller peak RSS %s (PSS %s, %d processes)  tree peak RSS %s "
            "(%d processes)  [%d samples]" % (run.name, run.rc, run.seconds, run.cpu, _mib(p.controller_rss),
                                              _mib(p.controller_pss), p.controller_procs, _mib(p.tree_rss),
                                              p.tree_procs, p.samples))
    slowest = task_times(run.stdout)
    if slowest:
        line += "\n         slowest tasks (wall time, all hosts): " + "; ".join("%s %.1f s" % t for t in slowest)
    return line


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--forks", type=int, default=20)
    parser.add_argument("--keep", help="working directory to keep (default: a temporary one, removed)")
    parser.add_argument("--summary", help="write the figures as JSON here")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_audit_load: needs root (the facts module enters namespaces)", file=sys.stderr)
        return 1
    _ensure_dev_link()
    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="nsg-load-"))
    make_workdir(workdir, args.hosts, args.forks)
    hosts = ["h%03d" % i for i in range(args.hosts)]
    print("hosts %d, forks %d, cpus %d, load average %s, workdir %s" % (
        args.hosts, args.forks, os.cpu_count() or 0, " ".join("%.2f" % x for x in os.getloadavg()), workdir))
    ok = True
    try:
        baseline = run_baseline(workdir)
        print(describe(baseline))
        audit = run_audit(workdir)
        print(describe(audit))
        report = run_report(workdir)
        print(describe(report))
        summary: Dict[str, object] = {"hosts": args.hosts, "forks": args.forks}
        for run in (baseline, audit, report):
            summary[run.name] = {"rc": run.rc, "seconds": round(run.seconds, 2), "cpu_seconds": round(run.cpu, 2),
                                 **vars(run.peaks), **run.extra,
                                 "slowest_tasks": task_times(run.stdout)}
            if run.rc != 0:
                ok = False
                print("%s failed (rc %d): %s" % (run.name, run.rc, (run.stdout + run.stderr)[-1500:]))
        cache_mib = audit.extra["fact_cache_bytes"] / 1048576.0
        print("fact cache: %d files, %.1f MiB" % (audit.extra["fact_cache_files"], cache_mib))
        for name in ("reports", "cache-reports"):
            files = {p.name: p.stat().st_size for p in sorted((workdir / name).glob("*"))} if (workdir / name).is_dir() else {}
            print("%s: %s" % (name, ", ".join("%s %.1f MiB" % (k, v / 1048576.0) for k, v in files.items()) or "none"))
            summary[name] = files
            fleet = workdir / name / "fleet.json"
            if not fleet.exists():
                ok = False
                print("%s: no fleet.json" % name)
                continue
            problems, facts = check_report(fleet, hosts)
            summary[name + "_check"] = dict(facts, problems=problems)
            print("%s/fleet.json: %d hosts, %d findings, %d per host, %d transient sets; %s" % (
                name, facts["hosts"], facts["findings"], facts["findings_per_host"], facts["transient_sets"],
                "; ".join(problems) or "every host ok, the same findings on each"))
            ok = ok and not problems
        for run in (audit, report):
            print("ratio %s / baseline: time %.2fx, cpu %.2fx, controller RSS %.2fx, controller PSS %.2fx, tree RSS %.2fx" % (
                run.name, run.seconds / baseline.seconds, run.cpu / max(baseline.cpu, 1e-9),
                run.peaks.controller_rss / max(baseline.peaks.controller_rss, 1),
                run.peaks.controller_pss / max(baseline.peaks.controller_pss, 1),
                run.peaks.tree_rss / max(baseline.peaks.tree_rss, 1)))
        print("load average after: %s" % " ".join("%.2f" % x for x in os.getloadavg()))
        if args.summary:
            Path(args.summary).write_text(json.dumps(summary, indent=2))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print("RESULT: %s" % ("completed, reports correct" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
