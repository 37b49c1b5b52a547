"""Start and stop one real container per runtime, each with ``net.core.somaxconn=1024``.

Every runtime keeps its state in a private directory, so the tests neither see nor disturb
containers of the host or of other engineers:

- Docker: a private ``dockerd`` (own data-root, exec-root, socket, pidfile; no iptables, no
  ip_forward, no bridge), its own containerd; the image is ``docker import`` of the busybox
  rootfs; containers run with ``--network none`` (Docker only refuses ``net.*`` sysctls with
  the host's network namespace). The CLI is pinned to the Debian package's ``/usr/bin/docker``:
  ``/usr/local/bin/docker`` may be a newer CLI with other error texts.
- Podman: ``--root/--runroot/--tmpdir`` in the private directory, ``--runtime runc`` and the
  ulimits this host allows (its bounding set lacks CAP_SYS_RESOURCE), ``--network none``.
- runc: a bundle from ``runc spec`` with ``linux.sysctl`` and the OCI image annotation.
- LXC: ``lxc-create -t busybox`` in a private lxcpath, ``lxc.net.0.type = empty``,
  ``lxc.sysctl.net.core.somaxconn = 1024``, started in the foreground under our control.

Commands and flags are those ``/work/shared/reference/runtimes.md`` found to work here.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

REQUESTED = {"net.core.somaxconn": "1024"}
DOCKER_CLI = "/usr/bin/docker"
DOCKERD = "/usr/sbin/dockerd"
SLEEP = ["sleep", "3600"]


class RuntimeUnavailable(Exception):
    """The runtime cannot run here; the message is the exact reason (the fixture skips)."""


@dataclass
class Container:
    runtime: str
    id: str
    name: str
    image: str | None
    pid: int
    requested: dict = field(default_factory=lambda: dict(REQUESTED))
    extra: dict = field(default_factory=dict)


def _run(argv, timeout=60, check=True, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs, check=False)
    if check and proc.returncode != 0:
        raise RuntimeUnavailable("%s exited %d: %s" % (" ".join(argv[:4]), proc.returncode,
                                                       (proc.stderr or proc.stdout).strip()[-600:]))
    return proc


def _need(*binaries) -> None:
    if os.geteuid() != 0:
        raise RuntimeUnavailable("needs root")
    for binary in binaries:
        if shutil.which(binary) is None and not os.access(binary, os.X_OK):
            raise RuntimeUnavailable("%s is not installed (run scripts/install-test-host.sh)" % binary)


def _sysctl_flags(requested: dict) -> list:
    flags = []
    for key, value in requested.items():
        flags += ["--sysctl", "%s=%s" % (key, value)]
    return flags


def _runc_spec(directory: Path) -> dict:
    """runc's default OCI spec (``runc spec`` refuses to overwrite a config.json)."""
    (directory / "config.json").unlink(missing_ok=True)
    _run(["runc", "spec"], cwd=str(directory))
    return json.loads((directory / "config.json").read_text())


def _wait_pid_gone(pid: int, timeout: float, zombie_ok: bool = True) -> bool:
    """Gone, or (``zombie_ok``) a zombie: an orphaned container init is reaped by PID 1
    whenever that gets to it, which can take a second or two here."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open("/proc/%d/stat" % pid) as handle:
                stat = handle.read()
        except OSError:
            return True
        if zombie_ok and stat[stat.rindex(")") + 2:].startswith("Z"):
            return True
        time.sleep(0.02)
    return False


# ---------------------------------------------------------------------------------------------
class DockerEngine:
    """A private dockerd started by hand."""

    IMAGE = "nsguard-test/busybox:1"

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.data_root = workdir / "data"
        self.exec_root = workdir / "exec"
        self.socket = workdir / "docker.sock"
        self.pidfile = workdir / "dockerd.pid"
        self.log = workdir / "dockerd.log"
        self.proc = None
        self.containers = []

    def argv(self) -> list:
        return [DOCKERD, "--data-root", str(self.data_root), "--exec-root", str(self.exec_root),
                "--pidfile", str(self.pidfile), "-H", "unix://%s" % self.socket,
                # No host changes: no iptables/nft rules, no ip_forward, no docker0 bridge.
                "--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false",
                "--bridge=none", "--log-level=warn"]

    def start(self, timeout: float = 30.0) -> None:
        _need(DOCKERD, DOCKER_CLI, "containerd", "runc")
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeUnavailable("dockerd exited %d: %s" % (self.proc.returncode, self.log_tail()))
            if self.socket.exists() and self.cli("version", check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeUnavailable("dockerd not ready after %.0f s: %s" % (timeout, self.log_tail()))

    def log_tail(self) -> str:
        try:
            return self.log.read_text()[-800:]
        except OSError:
            return ""

    def cli(self, *args, check=True, timeout=60) -> subprocess.CompletedProcess:
        return _run([DOCKER_CLI, "-H", "unix://%s" % self.socket] + list(args), timeout=timeout, check=check)

    def import_image(self, tarball: Path) -> str:
        self.cli("import", "-c", 'CMD ["/bin/sh"]', str(tarball), self.IMAGE)
        return self.IMAGE

    def run(self, name: str, requested: dict | None = None, extra=()) -> Container:
        requested = dict(REQUESTED if requested is None else requested)
        cid = self.cli("run", "-d", "--name", name, "--network", "none", "--label", "nsguard.test=runtimes",
                       *_sysctl_flags(requested), *extra, self.IMAGE, *SLEEP).stdout.strip()
        self.containers.append(cid)
        pid = int(self.cli("inspect", "-f", "{{.State.Pid}}", cid).stdout.strip())
        return Container("docker", cid, name, self.IMAGE, pid, dict(requested),
                         extra={"socket": str(self.socket), "labels": {"nsguard.test": "runtimes"}})

    def try_run(self, *args) -> subprocess.CompletedProcess:
        """A ``docker run`` expected to fail (its container, if any, is removed later)."""
        return self.cli("run", "-d", "--network", "none", *args, self.IMAGE, *SLEEP, check=False)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            ids = self.cli("ps", "-aq", check=False).stdout.split()
            if ids:
                self.cli("rm", "-f", *ids, check=False)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


# ---------------------------------------------------------------------------------------------
class Podman:
    """podman with private storage: nothing in /var/lib/containers/storage or /run/containers/storage."""

    IMAGE = "localhost/nsguard-test/busybox:1"

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.containers = []

    def global_args(self) -> list:
        return ["podman", "--root", str(self.workdir / "root"), "--runroot", str(self.workdir / "run"),
                "--tmpdir", str(self.workdir / "tmp"), "--events-backend", "none",
                "--cgroup-manager", "cgroupfs", "--runtime", "runc"]

    def cli(self, *args, check=True, timeout=60) -> subprocess.CompletedProcess:
        return _run(self.global_args() + list(args), timeout=timeout, check=check)

    def start(self) -> None:
        _need("podman", "runc", "conmon")
        self.workdir.mkdir(parents=True, exist_ok=True)

    def import_image(self, tarball: Path) -> str:
        self.cli("import", str(tarball), self.IMAGE)
        return self.IMAGE

    # This host's bounding set lacks CAP_SYS_RESOURCE and its nofile hard limit is 20000:
    # podman's default rlimits (1048576) cannot be set, so ask for what the host allows.
    RUN_FLAGS = ("--network", "none", "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768")

    def run(self, name: str, requested: dict | None = None) -> Container:
        requested = dict(REQUESTED if requested is None else requested)
        cid = self.cli("run", "-d", "--name", name, "--label", "nsguard.test=runtimes", *self.RUN_FLAGS,
                       *_sysctl_flags(requested), self.IMAGE, *SLEEP).stdout.strip().splitlines()[-1]
        self.containers.append(cid)
        pid = int(self.cli("inspect", "-f", "{{.State.Pid}}", cid).stdout.strip())
        return Container("podman", cid, name, self.IMAGE, pid, dict(requested),
                         extra={"labels": {"nsguard.test": "runtimes"}})

    def try_run(self, *args) -> subprocess.CompletedProcess:
        return self.cli("run", "-d", *self.RUN_FLAGS, *args, self.IMAGE, *SLEEP, check=False)

    def stop(self) -> None:
        ids = self.cli("ps", "-aq", check=False).stdout.split()
        if ids:
            # -t 0: busybox sleep as pid 1 ignores SIGTERM; waiting for it costs 10 s.
            self.cli("rm", "-f", "-t", "0", *ids, check=False)
        # Not ``podman system reset``: it would also delete podman networks of the host.
        self.cli("rmi", "-a", "-f", check=False)


# ---------------------------------------------------------------------------------------------
class Runc:
    """runc with a hand-made OCI bundle (state in runc's default root, /run/runc/ID)."""

    IMAGE = "nsguard-test/busybox-rootfs"

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.containers = []

    def start(self) -> None:
        _need("runc")
        self.workdir.mkdir(parents=True, exist_ok=True)

    def bundle(self, name: str, rootfs: Path, requested: dict) -> Path:
        bundle = self.workdir / name
        bundle.mkdir(parents=True, exist_ok=True)
        config = _runc_spec(bundle)
        config["root"] = {"path": str(rootfs), "readonly": True}
        config["process"]["terminal"] = False
        config["process"]["args"] = list(SLEEP)
        config["hostname"] = name
        config["linux"]["sysctl"] = dict(requested)
        # The OCI image annotation is what names a bare runc container's image.
        config["annotations"] = {"org.opencontainers.image.ref.name": self.IMAGE}
        (bundle / "config.json").write_text(json.dumps(config, indent=2))
        return bundle

    def run(self, name: str, rootfs: Path, requested: dict | None = None) -> Container:
        requested = dict(REQUESTED if requested is None else requested)
        proc = self.try_run(name, rootfs, requested)
        if proc.returncode != 0:
            raise RuntimeUnavailable("runc run exited %d: %s" % (proc.returncode, proc.stderr.strip()))
        state = json.loads(_run(["runc", "state", name]).stdout)
        return Container("runc", name, name, self.IMAGE, int(state["pid"]), dict(requested),
                         extra={"bundle": str(self.workdir / name)})

    def try_run(self, name: str, rootfs: Path, requested: dict) -> subprocess.CompletedProcess:
        bundle = self.bundle(name, rootfs, requested)
        self.containers.append(name)
        # -d: the container inherits runc's stdio; a pipe would stay open for as long as the
        # container runs, so errors go to a file.
        log = bundle / "runc.stderr"
        with open(log, "w") as err:
            proc = subprocess.run(["runc", "run", "-d", "--bundle", str(bundle), name], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=err, timeout=60, check=False)
        return subprocess.CompletedProcess(proc.args, proc.returncode, "", log.read_text())

    def stop(self) -> None:
        for name in self.containers:
            state = subprocess.run(["runc", "state", name], capture_output=True, text=True, check=False)
            if state.returncode != 0:
                continue
            pid = json.loads(state.stdout).get("pid")
            subprocess.run(["runc", "kill", name, "KILL"], capture_output=True, check=False)
            if pid:
                _wait_pid_gone(int(pid), 10)
            subprocess.run(["runc", "delete", "-f", name], capture_output=True, check=False)


# ---------------------------------------------------------------------------------------------
class Lxc:
    """LXC with a private lxcpath; the container comes from the busybox template."""

    IMAGE = "lxc-busybox"  # what lxc-create records: the template that built the rootfs

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.procs = {}

    def start(self) -> None:
        _need("lxc-create", "lxc-start", "lxc-info", "lxc-stop", "lxc-destroy")
        self.workdir.mkdir(parents=True, exist_ok=True)

    def base_config(self, requested: dict, extra_lines=()) -> Path:
        path = self.workdir / ("base-%d.conf" % len(self.procs))
        lines = ["lxc.net.0.type = empty",              # no lxcbr0: lxc-net is not running
                 "lxc.apparmor.profile = unconfined"]   # no AppArmor on this kernel
        lines += ["lxc.sysctl.%s = %s" % (k, v) for k, v in requested.items()]
        lines += list(extra_lines)
        path.write_text("\n".join(lines) + "\n")
        return path

    def create(self, name: str, requested: dict, extra_lines=()) -> None:
        _run(["lxc-create", "-P", str(self.workdir), "-n", name, "-t", "busybox",
              "-f", str(self.base_config(requested, extra_lines))])

    def start_container(self, name: str, timeout: float = 10.0) -> subprocess.Popen:
        log = self.workdir / ("%s.log" % name)
        # -F: lxc-start stays our child (and the container's monitor), so we reap it.
        proc = subprocess.Popen(["lxc-start", "-P", str(self.workdir), "-n", name, "-F", "-l", "INFO",
                                 "-o", str(log)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        self.procs[name] = proc
        wait = subprocess.run(["lxc-wait", "-P", str(self.workdir), "-n", name, "-s", "RUNNING|STOPPED",
                               "-t", str(int(timeout))], capture_output=True, text=True, timeout=timeout + 5, check=False)
        state = _run(["lxc-info", "-P", str(self.workdir), "-n", name, "-sH"], check=False).stdout.strip()
        if wait.returncode != 0 or state != "RUNNING":
            proc.wait(timeout)
        return proc

    def log_text(self, name: str) -> str:
        try:
            return (self.workdir / ("%s.log" % name)).read_text()
        except OSError:
            return ""

    def run(self, name: str, requested: dict | None = None) -> Container:
        requested = dict(REQUESTED if requested is None else requested)
        self.create(name, requested)
        self.start_container(name)
        pid_text = _run(["lxc-info", "-P", str(self.workdir), "-n", name, "-pH"], check=False).stdout.strip()
        if not pid_text.isdigit():
            raise RuntimeUnavailable("lxc-start %s did not start: %s" % (name, self.log_text(name)[-800:]))
        return Container("lxc", name, name, self.IMAGE, int(pid_text), dict(requested),
                         extra={"lxcpath": str(self.workdir)})

    def stop(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is None:
                subprocess.run(["lxc-stop", "-P", str(self.workdir), "-n", name, "-k"], capture_output=True, timeout=30, check=False)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
            subprocess.run(["lxc-destroy", "-P", str(self.workdir), "-n", name], capture_output=True, timeout=30, check=False)


# ---------------------------------------------------------------------------------------------
class ContainerdPod:
    """A Kubernetes-shaped pod on real containerd (dockerd's own, through ``ctr``): a sandbox
    that holds the pod's sysctls and an app container that joins the sandbox's net/ipc/uts
    namespaces by path, with the annotations containerd's CRI plugin writes and the kubelet's
    cgroupfs layout ``/kubepods/besteffort/pod<uid>/<id>``. No kubelet and no registry: the
    metadata on the host has the shape a real node's has."""

    NAMESPACE = "k8s.io"
    IMAGE = "nsguard-test/busybox:1"
    POD_UID = "4b7f0c1e-2d3a-4f5b-8c6d-7e8f9a0b1c2d"

    def __init__(self, engine: DockerEngine, rootfs: Path, tag: str):
        self.engine = engine
        self.rootfs = rootfs
        self.pod_name = "web-%s" % tag
        self.pod_namespace = "nsguard-test"
        self.workdir = engine.workdir / "pod"
        self.ids = []

    def ctr(self, *args, check=True, **kwargs) -> subprocess.CompletedProcess:
        sock = str(self.engine.exec_root / "containerd" / "containerd.sock")
        return _run(["ctr", "-a", sock, "-n", self.NAMESPACE] + list(args), check=check, **kwargs)

    def _spec(self, cid: str, annotations: dict, sysctls: dict, join_pid=None) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        spec = _runc_spec(self.workdir)
        spec["root"] = {"path": str(self.rootfs), "readonly": True}
        spec["process"]["terminal"] = False
        spec["process"]["args"] = list(SLEEP)
        spec["linux"]["sysctl"] = dict(sysctls)
        spec["linux"]["cgroupsPath"] = "/kubepods/besteffort/pod%s/%s" % (self.POD_UID, cid)
        spec["annotations"] = annotations
        if join_pid:
            for entry in spec["linux"]["namespaces"]:
                if entry["type"] in ("network", "ipc", "uts"):
                    entry["path"] = "/proc/%d/ns/%s" % (join_pid, {"network": "net"}.get(entry["type"], entry["type"]))
        path = self.workdir / ("%s.json" % cid[:12])
        path.write_text(json.dumps(spec, indent=2))
        return path

    def _start(self, cid: str, spec: Path) -> int:
        err = self.workdir / ("%s.stderr" % cid[:12])
        with open(err, "w") as handle:
            # ctr -d: the task inherits ctr's stdio, so no pipes (see Runc.try_run).
            proc = subprocess.run(["ctr", "-a", str(self.engine.exec_root / "containerd" / "containerd.sock"),
                                   "-n", self.NAMESPACE, "run", "-d", "--config", str(spec), cid],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=handle, timeout=60, check=False)
        self.ids.append(cid)
        if proc.returncode != 0:
            raise RuntimeUnavailable("ctr run exited %d: %s" % (proc.returncode, err.read_text().strip()))
        for line in self.ctr("task", "ls").stdout.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == cid:
                return int(fields[1])
        raise RuntimeUnavailable("ctr task ls does not list %s" % cid)

    def start(self, requested: dict | None = None) -> tuple:
        """(sandbox, app) Containers; the pod's sysctls are on the sandbox only, as the CRI
        plugin does it."""
        requested = dict(REQUESTED if requested is None else requested)
        _need("ctr", "runc")
        sandbox_id = ("5a" * 32)
        app_id = ("a9" * 32)
        common = {"io.kubernetes.cri.sandbox-id": sandbox_id, "io.kubernetes.cri.sandbox-name": self.pod_name,
                  "io.kubernetes.cri.sandbox-namespace": self.pod_namespace,
                  "io.kubernetes.cri.sandbox-uid": self.POD_UID}
        sandbox_pid = self._start(sandbox_id, self._spec(
            sandbox_id, dict(common, **{"io.kubernetes.cri.container-type": "sandbox"}), requested))
        app_pid = self._start(app_id, self._spec(
            app_id, dict(common, **{"io.kubernetes.cri.container-type": "container",
                                    "io.kubernetes.cri.container-name": "app",
                                    "io.kubernetes.cri.image-name": self.IMAGE}), {}, join_pid=sandbox_pid))
        sandbox = Container("containerd", sandbox_id, "POD", None, sandbox_pid, dict(requested))
        app = Container("containerd", app_id, "app", self.IMAGE, app_pid, dict(requested))
        return sandbox, app

    def stop(self) -> None:
        for cid in reversed(self.ids):
            self.ctr("task", "kill", "-s", "KILL", cid, check=False)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and cid in self.ctr("task", "ls", "-q", check=False).stdout.split():
                self.ctr("task", "rm", "-f", cid, check=False)
                time.sleep(0.05)
            self.ctr("container", "rm", cid, check=False)
        self.ids = []
