"""What container runtimes change on the host, snapshotted before and restored after.

``/work/shared/reference/runtimes.md`` lists it: dockerd and netavark set ``ip_forward`` (which
also flips ``conf.*.forwarding`` and ``accept_redirects``), add nft tables and bridges
(``docker0``, ``podman0``), leave nsfs mounts, empty cgroups (``docker``, ``libpod_parent``,
``lxc.pivot``, ``lxc.monitor.NAME``) and state directories in ``/run`` and ``/var/lib``.

Restoring touches only what a runtime is known to create *and* what was not there at the
snapshot, so namespaces, links, tables and cgroups of other engineers' tests are left alone.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
# Host sysctls a runtime may change. ip_forward first: writing it resets conf.*.forwarding.
WATCHED_SYSCTLS = (
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.forwarding",
    "net.ipv4.conf.default.forwarding",
    "net.ipv6.conf.all.forwarding",
    "net.ipv6.conf.default.forwarding",
    "net.ipv4.conf.all.accept_redirects",
    "net.ipv4.conf.default.accept_redirects",
    "net.core.somaxconn",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    "vm.max_map_count",
    "kernel.pid_max",
)
RUNTIME_LINKS = ("docker0", "podman0", "lxcbr0", "cni-podman0")
RUNTIME_NFT_TABLES = ("ip nat", "ip filter", "ip6 nat", "ip6 filter", "inet netavark", "ip netavark")
RUNTIME_CGROUPS = ("docker", "libpod_parent", "lxc.pivot", "machine.slice")
# State directories the runtimes create outside their configurable roots.
RUNTIME_DIRS = ("/run/docker", "/run/containerd", "/run/containers", "/run/libpod", "/run/lxc",
                "/run/runc", "/var/lib/containers", "/var/lib/docker")


def _sysctl_path(key: str) -> Path:
    return Path("/proc/sys") / key.replace(".", "/")


def read_sysctl(key: str):
    try:
        return _sysctl_path(key).read_text().strip()
    except OSError:
        return None


def write_sysctl(key: str, value: str) -> None:
    _sysctl_path(key).write_text(value + "\n")


def _links() -> set:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=False).stdout
    return {line.split(": ")[1].split("@")[0] for line in out.splitlines() if ": " in line}


def _nft_tables() -> set:
    try:
        out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=False).stdout
    except FileNotFoundError:
        return set()
    return {line[len("table "):].strip() for line in out.splitlines() if line.startswith("table ")}


def _mount_points() -> list:
    points = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            fields = line.split()
            if len(fields) > 4:
                points.append(fields[4].replace("\\040", " "))
    return points


def _cgroup_children() -> dict:
    """Top-level cgroup directories of every mounted hierarchy."""
    out = {}
    try:
        hierarchies = [p for p in CGROUP_ROOT.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return out
    for hierarchy in hierarchies:
        try:
            out[str(hierarchy)] = {p.name for p in hierarchy.iterdir() if p.is_dir()}
        except OSError:
            continue
    return out


@dataclass
class HostState:
    """One snapshot; :meth:`changes` compares with now, :meth:`restore` undoes runtime changes."""

    sysctls: dict = field(default_factory=dict)
    links: set = field(default_factory=set)
    nft_tables: set = field(default_factory=set)
    cgroups: dict = field(default_factory=dict)
    dirs: dict = field(default_factory=dict)

    @classmethod
    def snapshot(cls) -> "HostState":
        return cls(
            sysctls={k: read_sysctl(k) for k in WATCHED_SYSCTLS},
            links=_links(),
            nft_tables=_nft_tables(),
            cgroups=_cgroup_children(),
            dirs={d: os.path.exists(d) for d in RUNTIME_DIRS},
        )

    def changes(self, own_names=()) -> list:
        """Human-readable differences a runtime could have made (others' changes included)."""
        now = HostState.snapshot()
        out = []
        for key, before in self.sysctls.items():
            if now.sysctls.get(key) != before:
                out.append("sysctl %s: %r -> %r" % (key, before, now.sysctls.get(key)))
        for link in sorted((now.links - self.links) & set(RUNTIME_LINKS)):
            out.append("link %s added" % link)
        for table in sorted((now.nft_tables - self.nft_tables) & set(RUNTIME_NFT_TABLES)):
            out.append("nft table %s added" % table)
        for hierarchy, names in now.cgroups.items():
            for name in sorted(names - self.cgroups.get(hierarchy, set())):
                if self._runtime_cgroup(name, own_names):
                    out.append("cgroup %s/%s added" % (hierarchy, name))
        return out

    @staticmethod
    def _runtime_cgroup(name: str, own_names) -> bool:
        if name in RUNTIME_CGROUPS or name in own_names:
            return True
        return any(name in ("lxc.monitor.%s" % n, "lxc.payload.%s" % n) for n in own_names)

    def restore(self, workdirs=(), own_names=()) -> list:
        """Undo what the runtimes changed; returns what was done (for the test log).

        ``workdirs``: our private runtime roots; every mount below them is unmounted.
        ``own_names``: container names/ids we started (their leftover cgroups are removed).
        """
        done = []
        for workdir in workdirs:
            prefix = str(workdir).rstrip("/") + "/"
            for point in sorted((p for p in _mount_points() if p.startswith(prefix)), key=len, reverse=True):
                if subprocess.run(["umount", "-l", point], capture_output=True, check=False).returncode == 0:
                    done.append("umount %s" % point)
        for key, before in self.sysctls.items():
            if before is not None and read_sysctl(key) != before:
                try:
                    write_sysctl(key, before)
                    done.append("sysctl %s=%s" % (key, before))
                except OSError as exc:
                    done.append("sysctl %s: could not restore: %s" % (key, exc))
        now = HostState.snapshot()
        for link in sorted((now.links - self.links) & set(RUNTIME_LINKS)):
            subprocess.run(["ip", "link", "del", link], capture_output=True, check=False)
            done.append("ip link del %s" % link)
        for table in sorted((now.nft_tables - self.nft_tables) & set(RUNTIME_NFT_TABLES)):
            subprocess.run(["nft", "delete", "table"] + table.split(), capture_output=True, check=False)
            done.append("nft delete table %s" % table)
        for hierarchy, names in now.cgroups.items():
            for name in sorted(names - self.cgroups.get(hierarchy, set())):
                if self._runtime_cgroup(name, own_names):
                    if _rmdir_tree(Path(hierarchy) / name):
                        done.append("rmdir %s/%s" % (hierarchy, name))
        for directory, existed in self.dirs.items():
            if not existed and os.path.exists(directory):
                shutil.rmtree(directory, ignore_errors=True)
                done.append("rm -r %s" % directory)
        return done


def _rmdir_tree(path: Path) -> bool:
    """rmdir a cgroup and its children, deepest first; a cgroup with processes stays."""
    ok = True
    for root, dirs, _files in os.walk(path, topdown=False):
        for name in dirs:
            try:
                os.rmdir(os.path.join(root, name))
            except OSError:
                ok = False
    try:
        os.rmdir(path)
    except OSError:
        ok = False
    return ok
