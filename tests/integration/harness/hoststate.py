"""What container runtimes change on the host, snapshotted before and restored after.

``/work/shared/reference/runtimes.md`` lists it: dockerd and netavark set ``ip_forward`` (which
also flips ``conf.*.forwarding`` and ``accept_redirects``), add nft tables and bridges
(``docker0``, ``podman0``), leave nsfs mounts, empty cgroups (``docker``, ``libpod_parent``,
``lxc.pivot``, ``lxc.monitor.NAME``) and state directories in ``/run`` and ``/var/lib``.

Restoring touches only what a runtime is known to create *and* what was not there at the
snapshot, so namespaces, links, tables and cgroups of other engineers' tests are left alone.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
# Host sysctls a runtime is known to change (dockerd and netavark enable forwarding). Only
# these: other engineers' tests change other host keys meanwhile (and restore them), so
# "restoring" e.g. somaxconn to our snapshot could undo their change in the middle of their test.
# ip_forward first: writing it resets conf.*.forwarding.
WATCHED_SYSCTLS = (
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.forwarding",
    "net.ipv4.conf.default.forwarding",
    "net.ipv6.conf.all.forwarding",
    "net.ipv6.conf.default.forwarding",
    "net.ipv4.conf.all.accept_redirects",
    "net.ipv4.conf.default.accept_redirects",
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
            if existed or not os.path.exists(directory):
                continue
            user = _in_use(directory)
            if user:
                done.append("left %s: %s" % (directory, user))
            else:
                shutil.rmtree(directory, ignore_errors=True)
                done.append("rm -r %s" % directory)
        return done


# Processes that keep state in these directories whatever their command line says.
_DIR_USERS = {"/run/containerd": ("containerd", "containerd-shim"), "/run/docker": ("dockerd",),
              "/run/containers": ("conmon", "podman", "crio"), "/run/libpod": ("conmon", "podman"),
              "/var/lib/containers": ("conmon", "podman", "crio"), "/run/lxc": ("lxc-start",),
              "/run/runc": ("conmon", "containerd-shim"), "/var/lib/docker": ("dockerd",)}


def _in_use(directory: str) -> str:
    """Why a runtime directory we did not find at the snapshot must stay: someone else's
    runtime process is still running (ours are all stopped by now), or a runc container whose
    state is there is still alive. Empty string: free to remove."""
    users = _DIR_USERS.get(directory, ())
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            comm = Path("/proc/%s/comm" % entry).read_text().strip()
            cmdline = Path("/proc/%s/cmdline" % entry).read_bytes()
        except OSError:
            continue
        if comm.startswith(users) if users else False:
            return "%s (pid %s) is running" % (comm, entry)
        if directory.encode() + b"/" in cmdline:
            return "pid %s (%s) uses it" % (entry, comm)
    if directory == "/run/runc":
        for state in Path(directory).glob("*/state.json"):
            try:
                pid = json.loads(state.read_text()).get("init_process_pid")
            except (OSError, ValueError):
                continue
            if pid and os.path.exists("/proc/%d" % pid):
                return "runc container %s is running" % state.parent.name
    return ""


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
