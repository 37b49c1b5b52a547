#!/usr/bin/env python
"""The gather as Ansible runs it (issue 15): ``sysctl_facts`` as a whole process.

    sudo .venv/bin/python bench/bench_gather_process.py [--sizes 100,300] [--repeat 3]

bench_gather.py times ``gather()`` inside its own process; a user pays for the whole module
process: interpreter start, imports, argument parsing, the probe, the JSON out. From one run:

(a) host only: ``sysctl -a >/dev/null`` against the module run as a process,
    ``python -m ansible_collections.nsguard.sysctl.plugins.modules.sysctl_facts ARGS.json``
    (``containers: false``; probe on, the default, and off), and the module's own share over
    the floor ``python -c "import ansible.module_utils.basic"`` (same interpreter and
    environment: under AnsiballZ the loader imports ``basic`` before the module runs, so nothing
    of ours can go below it; the host-only target sits near it on a 2-CPU VM);
(b) host + N sets made by this script (bench_gather's sets: net+ipc+uts+pid each), for each N:
    the loop ``for p in PIDS; do nsenter -t $p -n -i -u sysctl -a >/dev/null; done`` against the
    module process with its defaults; the process's result is checked (every set found, its
    somaxconn and hostname read);
(c) through AnsiballZ: a real ``ansible localhost -m nsguard.sysctl.sysctl_facts`` ad-hoc run,
    host only and host + the largest N, against ``ansible localhost -m ansible.builtin.ping`` in
    the same run (Ansible's fixed cost of one module on one host).

Every figure is the best of ``--repeat`` runs, the loop and the process taking turns (one
unmeasured round first, as in bench_gather). Targets: host + 100 sets < 0.8 s and >= 5x the
loop; host + 300 sets < 2.5 s; host only (probe on) < 0.15 s. The header says whether Python
may cache bytecode (``PYTHONDONTWRITEBYTECODE``): without a cache every run compiles the
collection's sources, as AnsiballZ always does (it ships sources in a zip).

Exit status: 0 targets met, 1 missed, 2 the gather did not find the sets or a run failed.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_gather as bg  # noqa: E402  (the sets, their clean-up, the loop, the checks)

DEV, BIN = bg.DEV, Path(sys.executable).parent
MODULE = "ansible_collections.nsguard.sysctl.plugins.modules.sysctl_facts"
TARGETS = {100: (0.8, 5.0), 300: (2.5, None)}
TARGET_HOST = 0.15


def best(func, repeat: int) -> tuple:
    """(best wall, its cpu) of ``repeat`` runs, and the last result."""
    runs = [bg.Timing(func, 1) for dummy in range(repeat)]
    fastest = min(runs, key=lambda t: t.wall)
    return fastest.wall, fastest.cpu, runs[-1].result


def module_process(args: dict, workdir: Path):
    path = workdir / ("args-%d.json" % abs(hash(json.dumps(args, sort_keys=True))))
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    env = dict(os.environ, PYTHONPATH=str(DEV))

    def run():
        proc = subprocess.run([sys.executable, "-m", MODULE, str(path)], env=env, capture_output=True, check=False)
        result = json.loads(proc.stdout)
        if result.get("failed"):
            raise RuntimeError("sysctl_facts failed: %s" % result.get("msg"))
        return result["ansible_facts"]["nsguard_sysctl"]
    return run


def import_basic():
    """The floor under every module run: the interpreter and ``ansible.module_utils.basic``, which
    AnsiballZ's loader imports before our module runs (same interpreter and environment as
    :func:`module_process`)."""
    env = dict(os.environ, PYTHONPATH=str(DEV))
    argv = [sys.executable, "-c", "import ansible.module_utils.basic"]
    return lambda: subprocess.run(argv, env=env, capture_output=True, check=True)


def adhoc(module: str, args: dict, workdir: Path):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(DEV), ANSIBLE_NOCOLOR="1", ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_PYTHON_INTERPRETER=sys.executable,
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
               PATH="%s%s%s" % (BIN, os.pathsep, os.environ.get("PATH", "")))
    argv = [str(BIN / "ansible"), "localhost", "-c", "local", "-m", module]
    if args:
        argv += ["-a", " ".join("%s=%s" % (k, json.dumps(v)) for k, v in args.items())]

    def run():
        proc = subprocess.run(argv, env=env, cwd=str(workdir), capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError("%s failed rc=%d: %s" % (" ".join(argv), proc.returncode, proc.stdout[-2000:]))
        result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
        return (result.get("ansible_facts") or {}).get("nsguard_sysctl")
    return run


def line(label: str, wall: float, cpu: float, extra: str = "") -> None:
    print("  %-58s %6.3f s (cpu %6.3f s)%s" % (label, wall, cpu, extra))


def run(args: argparse.Namespace, summary: dict) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="nsg-gather-proc-"))
    try:
        return _run(args, summary, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run(args: argparse.Namespace, summary: dict, workdir: Path) -> int:
    repeat = args.repeat
    print("gather as a process: %d CPU(s), kernel %s, python %s, best of %d; bytecode cache %s; %s" % (
        os.cpu_count() or 1, os.uname().release, sys.version.split()[0], repeat,
        "OFF (PYTHONDONTWRITEBYTECODE: sources compiled every run)" if os.environ.get("PYTHONDONTWRITEBYTECODE")
        else "on", bg.load_note()))
    ok, met = True, True

    print("\n(a) host only")
    base = best(lambda: bg.shell("sysctl -a >/dev/null"), repeat)
    line("baseline: sysctl -a >/dev/null", base[0], base[1])
    floor = best(import_basic(), repeat)
    line("floor: python -c 'import ansible.module_utils.basic'", floor[0], floor[1])
    summary["host"] = {"sysctl_a": base[0], "import_basic": floor[0]}
    for probe in (True, False):
        wall, cpu, dummy = best(module_process({"containers": False, "probe": probe}, workdir), repeat)
        line("module process, containers off, probe %s" % ("on" if probe else "off"), wall, cpu,
             "  %.1fx sysctl -a; %+.3f s (cpu %+.3f s) over the floor" % (wall / base[0], wall - floor[0],
                                                                         cpu - floor[1]))
        summary["host"]["probe_%s" % probe] = wall
        summary["host"]["probe_%s_over_floor" % probe] = wall - floor[0]
        if probe:
            verdict = wall < TARGET_HOST
            met = met and verdict
            print("  target host only (probe on) < %.2f s: %s" % (TARGET_HOST, "MET" if verdict else "MISSED"))

    print("\n(b) host + N namespace sets made by this script, module defaults")
    host_ns = bg.sysctl_facts.nsscan.read_ns("self", types=bg.COMPARED)
    tag = "%x" % (os.getpid() & 0xffff)
    made = []
    summary["sets"] = {}
    for size in sorted(args.sizes):
        made.extend(bg.make_sets(size - len(made), len(made), tag, host_ns))
        loop_run, process = bg.nsenter_loop([s.inner for s in made]), module_process({}, workdir)
        loop_run()
        process()  # the unmeasured round
        rounds = [bg.Timing.of([loop_run, process]) for dummy in range(repeat)]
        loop = min((r[0] for r in rounds), key=lambda t: t.wall)
        proc = min((r[1] for r in rounds), key=lambda t: t.wall)
        found, verified, foreign = bg.check_found(proc.result, made)
        ratio = loop.wall / proc.wall
        line("N=%d baseline: nsenter loop" % size, loop.wall, loop.cpu)
        line("N=%d module process (defaults)" % size, proc.wall, proc.cpu,
             "  %.2fx faster than the loop; verified %d/%d sets%s" % (
                 ratio, verified, len(made), ("; %d not ours" % foreign) if foreign else ""))
        ok = ok and verified == len(made)
        summary["sets"][str(size)] = {"loop": loop.wall, "process": proc.wall, "ratio": ratio,
                                      "verified": verified}
        if size in TARGETS:
            seconds, times = TARGETS[size]
            verdict = proc.wall < seconds and (times is None or ratio >= times)
            met = met and verdict
            print("  target N=%d: < %.1f s%s: %s" % (size, seconds, (" and >= %.0fx" % times) if times else "",
                                                     "MET" if verdict else "MISSED"))

    print("\n(c) through AnsiballZ: ansible localhost -m ... (ad hoc, local connection)")
    ping = best(adhoc("ansible.builtin.ping", {}, workdir), repeat)
    line("baseline: ansible.builtin.ping", ping[0], ping[1])
    host = best(adhoc("nsguard.sysctl.sysctl_facts", {"containers": False}, workdir), repeat)
    line("sysctl_facts, containers off (probe on)", host[0], host[1], "  +%.3f s over ping" % (host[0] - ping[0]))
    full = best(adhoc("nsguard.sysctl.sysctl_facts", {}, workdir), repeat)
    found, verified, foreign = bg.check_found(full[2], made)
    line("sysctl_facts, host + %d sets (defaults)" % len(made), full[0], full[1],
         "  +%.3f s over ping; verified %d/%d" % (full[0] - ping[0], verified, len(made)))
    ok = ok and verified == len(made)
    summary["ansiballz"] = {"ping": ping[0], "host": host[0], "sets": full[0], "n": len(made)}
    print("\nend: %s" % bg.load_note())
    if not ok:
        print("RESULT the gather did not find or read every set this script made")
        return 2
    print("RESULT %s" % ("targets met" if met else "targets MISSED"))
    return 0 if met else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",") if x], default=[100, 300])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--summary")
    args = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("run as root: the bench makes namespaces and the gather enters them")
    signal.signal(signal.SIGTERM, bg._terminate)
    signal.signal(signal.SIGHUP, bg._terminate)
    summary = {"sizes": args.sizes, "repeat": args.repeat}
    rc = 2
    try:
        rc = run(args, summary)
    except KeyboardInterrupt:
        rc = 130
    except RuntimeError as exc:
        print("bench failed: %s" % exc, file=sys.stderr)
    finally:
        left = bg.cleanup()
        print("clean-up: every set killed and reaped, %d process(es) left in our namespaces" % left)
        if args.summary:
            Path(args.summary).write_text(json.dumps(dict(summary, rc=rc, left_behind=left), indent=1))
    return rc


if __name__ == "__main__":
    sys.exit(main())
