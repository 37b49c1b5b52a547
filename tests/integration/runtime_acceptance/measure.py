"""Run every acceptance case on every runtime this machine can run; write one table per runtime.

    python -m tests.integration.runtime_acceptance.measure [--out DIR] [--only NAME,...]

(``make runtime-acceptance`` writes ``rules/knowledge/runtime-acceptance/``.) Needs root. One
private dockerd and one private podman storage serve every Docker and Podman path of the run;
runtimes run in parallel threads, each runtime's cases one after the other. Every container is
removed after its case, every daemon at the end, and the host is restored as the integration
harness does (:mod:`tests.integration.harness.hoststate`).

A table (``<runtime>-<version>.json``) holds, per case: the key, the namespace mode, the value
asked for, accepted or refused, the stage that refused it, the exact message, the message as a
template (``{key}``, ``{value}``, ``{path}``, ``{name}`` in place of the case's own words, so
that other keys of the same kind can quote it) and, for an accepted key, the value read back
inside the container. Nothing in a table is written by hand.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from tests.integration.harness import containers as ct
from tests.integration.harness import hoststate
from tests.integration.harness import rootfs as rf

from . import drivers as dv
from .cases import cases, case_value, proc_path

ROOT = Path(__file__).resolve().parents[3]
DEFAULT_OUT = ROOT / "rules" / "knowledge" / "runtime-acceptance"
GENERATOR = "tests/integration/runtime_acceptance/measure.py"
SCHEMA_VERSION = 1


def host_value(key: str) -> Optional[str]:
    try:
        return (Path("/proc/sys") / proc_path(key)).read_text().strip()
    except OSError:
        return None


def template(message: str, key: str, value: str, name: str, workdir: str) -> str:
    """``message`` with the case's own words replaced by placeholders (the key, its value, its
    /proc/sys path, the container's name, the run's directory)."""
    text = message.replace(workdir, "{workdir}")
    text = re.sub(re.escape(name) + r"\b", "{name}", text)
    text = re.sub(r"\b[0-9a-f]{64}\b", "{id}", text)
    path = proc_path(key)
    text = text.replace("%s=%s" % (key, value), "{key}={value}")
    text = text.replace(path, "{path}") if path != key else text
    spellings = [key] + ([key.replace("/", ".")] if "/" in key else [])  # runc reports net/a/b as net.a.b
    for spelling in spellings:
        text = re.sub(r"(?<![\w.])" + re.escape(spelling) + r"(?![\w])", "{key}", text)
    if value:
        text = re.sub(r"(?<=\{key\} to )" + re.escape(value) + r"\b", "{value}", text)  # LXC's wording
    return text


def short_version(version: Dict[str, str], name: str) -> str:
    field = {"docker-api": "daemon", "docker-cli": "client", "podman-cli": "podman", "podman-api": "podman",
             "podman-crun": "podman",
             "runc": "runc", "crun": "crun", "containerd": "containerd", "lxc": "lxc"}[name]
    text = version.get(field, "")
    match = re.search(r"\d+\.\d+(\.\d+)?", text)
    return match.group(0) if match else "unknown"


def run_driver(driver: dv.Driver, workdir: Path, out: List[Dict[str, Any]], names: List[str]) -> Dict[str, Any]:
    """Start ``driver``, run every case, return its table (or ``{"skipped": reason}``)."""
    started = time.monotonic()
    try:
        driver.start()
    except (ct.RuntimeUnavailable, OSError) as exc:
        driver.stop()
        return {"runtime": driver.name or "docker-cli", "skipped": str(exc)}
    try:
        version = driver.version()
        results = []
        for index, (key, mode) in enumerate(cases(driver.extra_modes)):
            before = host_value(key.key)
            defaults = {k: host_value(k) for k in ENGINE_DEFAULT_KEYS}
            value = case_value(key, mode, before)
            outcome = driver.try_case(index, key, mode, value)
            after = host_value(key.key)
            changed = _restore_defaults(defaults)
            name = _case_name(driver, index)
            names.append(name)
            row = {"key": key.key, "class": key.klass, "mode": mode, "value": value,
                   "accepted": outcome.accepted, "stage": outcome.stage, "message": outcome.message,
                   "template": template(outcome.message, key.key, value, name, str(workdir))}
            if not outcome.accepted and not re.search(r"\{(key|path)\}", row["template"]):
                # The refusal does not name the key: the container cannot start in this mode
                # for a reason of its own (recorded, but it says nothing about the sysctl).
                row["stage"] = "unrelated"
            if outcome.accepted:
                row["observed"] = outcome.observed
            if after != before:
                row["host_changed"] = {"before": before, "after": after}
            if changed:
                row.setdefault("host_changed", {})["engine_defaults"] = changed
            results.append(row)
        table = {
            "schema_version": SCHEMA_VERSION, "runtime": driver.name, "path": driver.path,
            "version": version, "version_short": short_version(version, driver.name),
            "measured": datetime.date.today().isoformat(), "kernel": platform.release(),
            "generator": GENERATOR, "seconds": round(time.monotonic() - started, 1), "results": results,
        }
        out.append(table)
        return table
    finally:
        driver.stop()


# Keys an engine adds to every container it believes has its own netns (Docker and Podman's
# default sysctls): a runtime that writes them into a joined host netns changes the host.
ENGINE_DEFAULT_KEYS = ("net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start")


def _restore_defaults(before: Dict[str, Optional[str]]) -> Dict[str, Any]:
    """Put back any engine-default key a case changed on the host; what was changed."""
    changed = {}
    for key, old in before.items():
        now = host_value(key)
        if old is not None and now != old:
            (Path("/proc/sys") / proc_path(key)).write_text(old + "\n")
            changed[key] = {"before": old, "after": now}
    return changed


def _case_name(driver: dv.Driver, index: int) -> str:
    if isinstance(driver, dv.PodmanCrun):
        return "nsg-acc-podman-crun-%d" % index
    if isinstance(driver, dv.PodmanCLI):
        return "nsg-acc-podman-%d" % index
    if isinstance(driver, dv.DockerCLI):
        return "nsg-acc-cli%s-%d" % (re.sub(r"\W", "", driver.client_version), index)
    if isinstance(driver, dv.Runc):
        return "%s-%d" % (driver.prefix, index)
    return "nsg-acc-%s-%d" % (driver.name, index)


def measure(only: Tuple[str, ...] = (), workdir: Optional[Path] = None) -> Dict[str, Any]:
    """Every table of this machine: ``{"tables": [...], "skipped": {runtime: reason}, "restored": [...]}``."""
    if os.geteuid() != 0:
        raise SystemExit("the runtime acceptance harness needs root")
    own_dir = workdir is None
    workdir = workdir or Path(tempfile.mkdtemp(prefix="nsg-acc-", dir="/tmp"))
    state = hoststate.HostState.snapshot()
    names: List[str] = []
    tables: List[Dict[str, Any]] = []
    skipped: Dict[str, str] = {}
    engine = ct.DockerEngine(workdir / "docker")
    podman = ct.Podman(workdir / "podman")
    shared = []
    try:
        root = rf.build_rootfs(workdir / "rootfs")
        tarball = rf.pack(root, workdir / "rootfs.tar")
        want = lambda name: not only or name in only  # noqa: E731
        groups: List[List[dv.Driver]] = []
        if any(want(n) for n in ("docker-api", "docker-cli", "containerd")):
            try:
                engine.start()
                engine.import_image(tarball)
                shared.append(engine)
                docker = []
                if want("docker-api"):
                    docker.append(dv.DockerAPI(engine, engine.IMAGE))
                if want("docker-cli"):
                    docker += [dv.DockerCLI(b, engine, engine.IMAGE) for b in ("/usr/bin/docker", "/usr/local/bin/docker")]
                groups += [[d] for d in docker]
                if want("containerd"):
                    groups.append([dv.Ctr(workdir / "ctr", root, engine)])
            except ct.RuntimeUnavailable as exc:
                engine.stop()
                for n in ("docker-api", "docker-cli", "containerd"):
                    if want(n):
                        skipped[n] = "dockerd cannot run here: %s" % exc
        if want("podman-cli") or want("podman-api") or want("podman-crun"):
            try:
                podman.start()
                podman.import_image(tarball)
                shared.append(podman)
                if want("podman-cli"):
                    groups.append([dv.PodmanCLI(podman, podman.IMAGE)])
                if want("podman-api"):
                    groups.append([dv.PodmanAPI(podman, podman.IMAGE, workdir / "podman-api")])
                if want("podman-crun"):
                    groups.append([dv.PodmanCrun(podman, podman.IMAGE)])
            except ct.RuntimeUnavailable as exc:
                for n in ("podman-cli", "podman-api", "podman-crun"):
                    if want(n):
                        skipped[n] = "podman cannot run here: %s" % exc
        for name, make in (("runc", lambda: dv.Runc(workdir / "runc", root)),
                           ("crun", lambda: dv.Crun(workdir / "crun", root)),
                           ("lxc", lambda: dv.Lxc(workdir / "lxc"))):
            if want(name):
                groups.append([make()])
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            futures = [pool.submit(lambda g: [run_driver(d, workdir, tables, names) for d in g], g) for g in groups]
            for future in futures:
                for table in future.result():
                    if "skipped" in table:
                        skipped[table["runtime"]] = table["skipped"]
    finally:
        for runtime in reversed(shared):
            runtime.stop()
        restored = state.restore(workdirs=[workdir], own_names=names)
        if own_dir:
            shutil.rmtree(workdir, ignore_errors=True)
    tables.sort(key=lambda t: (t["runtime"], t["version_short"]))
    return {"tables": tables, "skipped": skipped, "restored": restored}


def table_file(table: Dict[str, Any]) -> str:
    return "%s-%s.json" % (table["runtime"], table["version_short"])


def write_tables(tables: List[Dict[str, Any]], out: Path) -> List[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for table in tables:
        path = out / table_file(table)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(table, indent=1, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
        written.append(path)
    return written


def summary(table: Dict[str, Any]) -> str:
    """One line per stage: which keys ended there (``key@mode``)."""
    by_stage: Dict[str, List[str]] = {}
    for row in table["results"]:
        by_stage.setdefault(row["stage"], []).append("%s@%s" % (row["key"], row["mode"]) if row["mode"] != "private" else row["key"])
    lines = ["%s %s (%s, %s s)" % (table["runtime"], table["version_short"], table["measured"], table["seconds"])]
    lines += ["  %s: %s" % (stage, ", ".join(keys)) for stage, keys in sorted(by_stage.items())]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--only", default="", help="comma-separated runtimes (docker-api, docker-cli, podman-cli, "
                                                    "podman-api, podman-crun, runc, crun, containerd, lxc)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    result = measure(tuple(n for n in args.only.split(",") if n))
    for path in write_tables(result["tables"], args.out):
        print("wrote %s" % path)
    for table in result["tables"]:
        print(summary(table))
    for name, reason in sorted(result["skipped"].items()):
        print("skipped %s: %s" % (name, reason))
    if result["restored"]:
        print("host restored: %s" % "; ".join(result["restored"]))
    print("%.1f s" % (time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
