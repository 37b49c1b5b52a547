"""One driver per path a sysctl request can take into a runtime.

A driver starts one container per case with the key requested and the case's namespaces
shared or not, and reports what happened: accepted (the container runs; the value is read back
from inside its namespaces) or refused, with the exact text the user sees and the stage that
refused it. Every driver keeps its state in the run's private directory and removes each
container right after its case.

Paths: the Docker Engine API (what community.docker.docker_container, docker_compose_v2 and
``docker compose`` use: HostConfig.Sysctls/NetworkMode/IpcMode/UTSMode, plain HTTP over the
daemon's unix socket); the docker CLI (``docker run --sysctl``, each installed client against
the same daemon); the podman CLI; podman's Docker-compatible API (``podman system service``);
runc and crun with an OCI bundle; LXC (``lxc.sysctl.*``); containerd through ``ctr`` (the
runtime under the kubelet's CRI).
"""
from __future__ import annotations

import http.client
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from tests.integration.harness import containers as ct

from .cases import MODE_NAMESPACE, Key, proc_path

CMD_TIMEOUT = 60


@dataclass
class Outcome:
    accepted: bool
    stage: str                 # accepted | client | daemon | runtime-validator | container-init
    message: str = ""
    observed: Optional[str] = None  # the value read inside the running container
    pid: Optional[int] = None


def _run(argv, timeout=CMD_TIMEOUT, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                          stdin=subprocess.DEVNULL, **kwargs)


def read_inside(pid: int, key: str) -> Optional[str]:
    """The key's value in the net/ipc/uts namespaces of ``pid`` (the host's cat, the host's /proc:
    those files resolve through the reader's namespaces)."""
    proc = _run(["nsenter", "-t", str(pid), "-n", "-i", "-u", "cat", "/proc/sys/" + proc_path(key)], timeout=10)
    return proc.stdout.strip() if proc.returncode == 0 else None


def stage_of(message: str, client_check: bool = False) -> str:
    """Which stage produced a refusal, from the text (each stage words its errors its own way)."""
    text = message
    if 'for "--sysctl" flag' in text:
        return "client"
    if re.search(r"error during container init|Failed to setup sysctl|open `/proc/sys|write to `/proc/sys|"
                 r"open /proc/sys|write /proc/sys", text):
        return "container-init"
    if re.search(r"runc (create|run) failed|crun:|OCI runtime|the sysctl `", text):
        return "runtime-validator"
    return "client" if client_check else "daemon"


_LOGRUS = re.compile(r'^time="[^"]*"\s+level=\w+\s+msg="((?:[^"\\]|\\.)*)"')


def first_line_error(text: str) -> str:
    """The first error line of a command's stderr, as the user reads it (a logrus line such as
    runc's ``time=... level=error msg="..."`` is reduced to its message)."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower() or "fail" in ln.lower()]
    line = (errors or lines or [""])[0]
    match = _LOGRUS.match(line)
    return json.loads('"%s"' % match.group(1)) if match else line


class Driver:
    """Base: ``name`` (the table's runtime), ``version()``, ``start()``, ``try_case()``, ``stop()``."""

    name = ""
    path = ""  # who takes this path (the table's "path")
    unavailable: Optional[str] = None
    extra_modes: tuple = ()  # cases.PATH_MODES this path can express

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def version(self) -> Dict[str, str]:
        return {}

    def try_case(self, index: int, key: Key, mode: str, value: str) -> Outcome:
        raise NotImplementedError

    def outcome_running(self, pid: Optional[int], key: Key) -> Outcome:
        return Outcome(True, "accepted", "", read_inside(pid, key.key) if pid else None, pid)


def _cmd_version(argv) -> str:
    proc = _run(argv, timeout=20)
    return (proc.stdout or proc.stderr).strip().splitlines()[0] if proc.returncode == 0 else ""


def runc_version(binary: str = "runc") -> str:
    text = _cmd_version([binary, "--version"])
    match = re.search(r"version\s+(\S+)", text)
    return match.group(1) if match else text


# --------------------------------------------------------------------------------- Docker API
class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = CMD_TIMEOUT):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def api(sock: str, method: str, url: str, body=None):
    """(status, decoded JSON or text) of one request to a Docker-style API on a unix socket."""
    conn = _UnixHTTP(sock)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, url, body=data, headers={"Content-Type": "application/json"} if data else {})
        resp = conn.getresponse()
        raw = resp.read().decode("utf-8", "replace")
    finally:
        conn.close()
    try:
        return resp.status, json.loads(raw) if raw else None
    except ValueError:
        return resp.status, raw


class DockerAPI(Driver):
    """POST /containers/create with HostConfig.Sysctls, then /start: the daemon's own checks,
    then the OCI runtime's (no client-side allowlist on this path)."""

    name = "docker-api"
    path = "Docker Engine API: community.docker.docker_container, docker_compose_v2, Compose files"
    API = "/v1.41"

    def __init__(self, engine: ct.DockerEngine, image: str):
        self.engine, self.image = engine, image

    @property
    def sock(self) -> str:
        return str(self.engine.socket)

    def host_config(self, mode: str, key: Key, value: str) -> dict:
        ns = MODE_NAMESPACE.get(mode)
        return {"NetworkMode": "host" if ns == "net" else "none",
                "IpcMode": "host" if ns == "ipc" else "private",
                "UTSMode": "host" if ns == "uts" else "",
                "Sysctls": {key.key: value}}

    def version(self) -> Dict[str, str]:
        status, info = api(self.sock, "GET", "/version")
        out = {"daemon": str(info.get("Version")), "api": str(info.get("ApiVersion"))} if status == 200 else {}
        out["oci_runtime"] = "runc " + runc_version()
        return out

    def try_case(self, index: int, key: Key, mode: str, value: str) -> Outcome:
        name = "nsg-acc-%s-%d" % (self.name, index)
        body = {"Image": self.image, "Cmd": list(ct.SLEEP), "Labels": {"nsguard.test": "acceptance"},
                "HostConfig": self.host_config(mode, key, value)}
        try:
            status, reply = api(self.sock, "POST", "%s/containers/create?name=%s" % (self.API, name), body)
            if status >= 300:
                return Outcome(False, "daemon", _api_message(reply))
            status, reply = api(self.sock, "POST", "%s/containers/%s/start" % (self.API, name))
            if status >= 300:
                message = _api_message(reply)
                return Outcome(False, stage_of(message), message)
            status, info = api(self.sock, "GET", "%s/containers/%s/json" % (self.API, name))
            pid = (info or {}).get("State", {}).get("Pid") if status == 200 else None
            return self.outcome_running(pid, key)
        finally:
            api(self.sock, "DELETE", "%s/containers/%s?force=1" % (self.API, name))


def _api_message(reply) -> str:
    if isinstance(reply, dict):
        return str(reply.get("message") or reply.get("cause") or reply)
    return str(reply).strip()


class PodmanAPI(DockerAPI):
    """The same requests to podman's Docker-compatible API (``podman system service``)."""

    name = "podman-api"
    path = "podman's Docker-compatible API (podman system service): Compose files and docker SDKs against podman"

    def __init__(self, podman: ct.Podman, image: str, workdir: Path):
        self.podman, self.image, self.workdir = podman, image, workdir
        self.proc = None

    @property
    def sock(self) -> str:
        return str(self.workdir / "podman-api.sock")

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / "podman-api.log", "w")
        self.proc = subprocess.Popen(self.podman.global_args() + ["system", "service", "--time=0", "unix://" + self.sock],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ct.RuntimeUnavailable("podman system service exited %d" % self.proc.returncode)
            if os.path.exists(self.sock):
                try:
                    if api(self.sock, "GET", "/_ping")[0] == 200:
                        return
                except OSError:
                    pass
            time.sleep(0.1)
        raise ct.RuntimeUnavailable("podman system service not ready after 20 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def host_config(self, mode: str, key: Key, value: str) -> dict:
        config = super().host_config(mode, key, value)
        # This host's bounding set lacks CAP_SYS_RESOURCE (see harness/containers.py Podman).
        config["Ulimits"] = [{"Name": "nofile", "Soft": 20000, "Hard": 20000},
                             {"Name": "nproc", "Soft": 32768, "Hard": 32768}]
        return config

    def version(self) -> Dict[str, str]:
        status, info = api(self.sock, "GET", "/version")
        out = {"podman": str(info.get("Version")), "api": str(info.get("ApiVersion"))} if status == 200 else {}
        out["oci_runtime"] = "runc " + runc_version()
        return out


# --------------------------------------------------------------------------------- CLIs
class DockerCLI(Driver):
    """``docker run -d --sysctl KEY=VALUE``: the client's allowlist first, then the daemon."""

    path = "docker CLI: docker run --sysctl (command/shell tasks, scripts)"

    def __init__(self, binary: str, engine: ct.DockerEngine, image: str):
        self.binary, self.engine, self.image = binary, engine, image
        self.unavailable = None if os.access(binary, os.X_OK) else "%s is not installed" % binary
        self.client_version = ""

    def start(self) -> None:
        if self.unavailable:
            raise ct.RuntimeUnavailable(self.unavailable)
        proc = _run([self.binary, "-H", "unix://%s" % self.engine.socket, "version", "-f", "{{.Client.Version}}"])
        if proc.returncode != 0:
            raise ct.RuntimeUnavailable("%s cannot talk to dockerd: %s" % (self.binary, proc.stderr.strip()))
        self.client_version = proc.stdout.strip()
        self.name = "docker-cli"

    def version(self) -> Dict[str, str]:
        server = _run([self.binary, "-H", "unix://%s" % self.engine.socket, "version", "-f", "{{.Server.Version}}"])
        return {"client": self.client_version, "client_binary": self.binary, "daemon": server.stdout.strip(),
                "oci_runtime": "runc " + runc_version()}

    def flags(self, mode: str) -> List[str]:
        ns = MODE_NAMESPACE.get(mode)
        return ["--network", "host" if ns == "net" else "none"] + (["--ipc", "host"] if ns == "ipc" else []) + (
            ["--uts", "host"] if ns == "uts" else [])

    def cli(self, *args) -> subprocess.CompletedProcess:
        return _run([self.binary, "-H", "unix://%s" % self.engine.socket] + list(args))

    def try_case(self, index: int, key: Key, mode: str, value: str) -> Outcome:
        name = "nsg-acc-cli%s-%d" % (re.sub(r"\W", "", self.client_version), index)
        try:
            proc = self.cli("run", "-d", "--name", name, "--label", "nsguard.test=acceptance", *self.flags(mode),
                            "--sysctl", "%s=%s" % (key.key, value), self.image, *ct.SLEEP)
            if proc.returncode != 0:
                message = first_line_error(proc.stderr)
                return Outcome(False, stage_of(message), message)
            pid = self.cli("inspect", "-f", "{{.State.Pid}}", name).stdout.strip()
            return self.outcome_running(int(pid) if pid.isdigit() else None, key)
        finally:
            self.cli("rm", "-f", name)


class PodmanCLI(DockerCLI):
    """``podman run -d --sysctl KEY=VALUE`` with private storage: podman's own checks (in the
    podman process: stage "client"), then the OCI runtime's."""

    name = "podman-cli"
    path = "podman CLI: containers.podman.podman_container / podman_pod, podman run --sysctl"
    extra_modes = ("host-net-path",)  # --network ns:/proc/PID/ns/net

    def __init__(self, podman: ct.Podman, image: str):
        self.podman, self.image = podman, image
        self.unavailable = None

    def start(self) -> None:
        pass

    def version(self) -> Dict[str, str]:
        return {"podman": _cmd_version(["podman", "--version"]).split()[-1], "oci_runtime": "runc " + runc_version()}

    def cli(self, *args, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
        return _run(self.podman.global_args() + list(args), env=env)

    def case_env(self, mode: str) -> Optional[Dict[str, str]]:
        """For ``host-net-path``: podman believes a netns joined by path is the container's own
        and adds its default sysctls (net.ipv4.ping_group_range=0 0), which crun then writes to
        the host. A private containers.conf without default sysctls keeps the case to its key."""
        if mode != "host-net-path":
            return None
        conf = self.podman.workdir / "no-default-sysctls.conf"
        if not conf.exists():
            conf.write_text("[containers]\ndefault_sysctls = []\n")
        return dict(os.environ, CONTAINERS_CONF=str(conf))

    def flags(self, mode: str) -> List[str]:
        ns = MODE_NAMESPACE.get(mode)
        network = "ns:" + host_netns_path() if mode == "host-net-path" else "host" if ns == "net" else "none"
        return ["--network", network, "--ipc", "host" if ns == "ipc" else "private",
                "--uts", "host" if ns == "uts" else "private",
                "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"]

    def try_case(self, index: int, key: Key, mode: str, value: str) -> Outcome:
        name = "nsg-acc-podman-%d" % index
        try:
            proc = self.cli("run", "-d", "--name", name, "--label", "nsguard.test=acceptance", *self.flags(mode),
                            "--sysctl", "%s=%s" % (key.key, value), self.image, *ct.SLEEP, env=self.case_env(mode))
            if proc.returncode != 0:
                message = first_line_error(proc.stderr)
                return Outcome(False, stage_of(message, client_check=True), message)
            pid = self.cli("inspect", "-f", "{{.State.Pid}}", name).stdout.strip()
            return self.outcome_running(int(pid) if pid.isdigit() else None, key)
        finally:
            self.cli("rm", "-f", "-t", "0", name)


class PodmanCrun(PodmanCLI):
    """``podman --runtime crun run --sysctl``: podman's own checks, then crun's (podman's default
    OCI runtime on Fedora and RHEL). crun refuses this host's hybrid cgroup layout, so each case
    runs in a private mount namespace without the unified mount (as :class:`Crun`), in one
    ``podman run --rm`` that prints the value from inside: the container's mounts never outlive
    the namespace they were made in. ``host-net-path`` joins the host's netns with ``--network
    ns:PATH``."""

    name = "podman-crun"
    path = "podman CLI with crun (--runtime crun): podman_container / podman_pod where crun is the OCI runtime"

    def start(self) -> None:
        if shutil.which("crun") is None:
            raise ct.RuntimeUnavailable("crun is not installed (apt-get install crun)")

    def version(self) -> Dict[str, str]:
        return {"podman": _cmd_version(["podman", "--version"]).split()[-1], "oci_runtime": "crun " + runc_version("crun")}

    def cli(self, *args, env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
        argv = self.podman.global_args()
        argv[argv.index("--runtime") + 1] = "crun"
        inner = " ".join(shlex.quote(a) for a in argv + list(args))
        return _run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                     "umount /sys/fs/cgroup/unified 2>/dev/null; exec %s" % inner], env=env)

    def try_case(self, index: int, key: Key, mode: str, value: str) -> Outcome:
        name = "nsg-acc-podman-crun-%d" % index
        proc = self.cli("run", "--rm", "--name", name, "--label", "nsguard.test=acceptance", *self.flags(mode),
                        "--sysctl", "%s=%s" % (key.key, value), self.image, "cat", "/proc/sys/" + proc_path(key.key),
                        env=self.case_env(mode))
        if proc.returncode != 0:
            message = first_line_error(proc.stderr)
            return Outcome(False, stage_of(message, client_check=True), message)
        return Outcome(True, "accepted", "", proc.stdout.strip())


# --------------------------------------------------------------------------------- OCI runtimes
def host_netns_path() -> str:
    """The host's network namespace as a path: the harness's own (it runs in the host's)."""
    return "/proc/%d/ns/net" % os.getpid()


def oci_spec(template: dict, rootfs: Path, mode: str, key: Key, value: str, hostname: str) -> dict:
    """``template`` (``runc spec``'s default) with the case's namespaces and sysctl."""
    spec = json.loads(json.dumps(template))
    ns = MODE_NAMESPACE.get(mode)
    shared = {"net": "network", "ipc": "ipc", "uts": "uts"}.get(ns)
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != shared]
    if mode == "host-net-path":
        # The host's network namespace, joined by path (runc compares it with its own: isHostNetNS).
        spec["linux"]["namespaces"].append({"type": "network", "path": host_netns_path()})
    spec["root"] = {"path": str(rootfs), "readonly": True}
    spec["process"]["terminal"] = False
    spec["process"]["args"] = list(ct.SLEEP)
    if shared == "uts":
        spec.pop("hostname", None)  # a hostname needs a private UTS namespace
    else:
        spec["hostname"] = hostname
    spec["linux"]["sysctl"] = {key.key: value}
    return spec


def _launch(argv: List[str], bundle: Path) -> subprocess.CompletedProcess:
    """Run a detaching command (the container inherits its stdio: no pipes, errors to a file)."""
    with open(bundle / "stderr", "w") as err:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                              timeout=CMD_TIMEOUT, check=False)
    return subprocess.CompletedProcess(proc.args, proc.returncode, "", (bundle / "stderr").read_text())


class Runc(Driver):
    """``runc run -d`` with an OCI bundle; state under the run's directory (``--root``)."""

    name = "runc"
    path = "runc with an OCI bundle (linux.sysctl): under containerd, CRI-O, docker, podman"
    binary = "runc"
    prefix = "nsg-acc-runc"
    extra_modes = ("host-net-path",)

    def __init__(self, workdir: Path, rootfs: Path):
        self.workdir, self.rootfs = workdir, rootfs
        self.template: dict = {}

    def start(self) -> None:
        if shutil.which(self.binary) is None:
            raise ct.RuntimeUnavailable("%s is not installed (apt-get install %s)" % (self.binary, self.binary))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.template = ct._runc_spec(self.workdir)

    def version(self) -> Dict[str, str]:
        return {self.binary: runc_version(self.binary)}

    def argv(self, *args) -> List[str]:
        return [self.binary, "--root", str(self.workdir / "state")] + list(args)

    def launch(self, bundle: Path, cid: str) -> subprocess.CompletedProcess:
        return _launch(self.argv("run", "-d", "--bundle", str(bundle), cid), bundle)

    def pid_of(self, cid: str) -> Optional[int]:
        state = _run(self.argv("state", cid))
        return json.loads(state.stdout).get("pid") if state.returncode == 0 else None

    def remove(self, cid: str) -> None:
        _run(self.argv("kill", cid, "KILL"))
        _run(self.argv("delete", "-f", cid))

    def try_case(self, index: int, key: Key, mode: str, value: str) -> Outcome:
        cid = "%s-%d" % (self.prefix, index)
        bundle = self.workdir / cid
        bundle.mkdir(parents=True, exist_ok=True)
        (bundle / "config.json").write_text(json.dumps(oci_spec(self.template, self.rootfs, mode, key, value, cid)))
        try:
            proc = self.launch(bundle, cid)
            if proc.returncode != 0:
                message = first_line_error(proc.stderr)
                return Outcome(False, stage_of(message), message)
            return self.outcome_running(self.pid_of(cid), key)
        finally:
            self.remove(cid)
            shutil.rmtree(bundle, ignore_errors=True)


class Crun(Runc):
    """crun refuses this host's hybrid cgroup layout (``cgroups in hybrid mode not supported``);
    the documented workaround runs it in a private mount namespace without the unified mount."""

    name = "crun"
    path = "crun with an OCI bundle (linux.sysctl): under CRI-O and podman (the default on Fedora and RHEL)"
    binary = "crun"
    prefix = "nsg-acc-crun"

    def launch(self, bundle: Path, cid: str) -> subprocess.CompletedProcess:
        inner = " ".join("'%s'" % a for a in self.argv("run", "-d", "--bundle", str(bundle), cid))
        script = "umount /sys/fs/cgroup/unified 2>/dev/null; exec %s" % inner
        return _launch(["unshare", "-m", "--propagation", "private", "sh", "-c", script], bundle)


class Ctr(Runc):
    """containerd (dockerd's own) through ``ctr run --config``: containerd hands the spec to runc
    through its shim, as the CRI plugin does for a Pod's sandbox."""

    name = "containerd"
    path = "containerd (ctr run --config; the CRI plugin under the kubelet passes a Pod's sysctls the same way)"
    prefix = "nsg-acc-ctr"
    extra_modes = ()  # a Pod's containers join the sandbox's netns by path, never the host's
    NAMESPACE = "nsguard-acceptance"

    def __init__(self, workdir: Path, rootfs: Path, engine: ct.DockerEngine):
        super().__init__(workdir, rootfs)
        self.engine = engine

    def start(self) -> None:
        if shutil.which("ctr") is None:
            raise ct.RuntimeUnavailable("ctr is not installed (apt-get install containerd)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.template = ct._runc_spec(self.workdir)

    def ctr(self, *args) -> List[str]:
        return ["ctr", "-a", str(self.engine.exec_root / "containerd" / "containerd.sock"), "-n", self.NAMESPACE] + list(args)

    def version(self) -> Dict[str, str]:
        text = _run(self.ctr("version")).stdout
        found = re.findall(r"Version:\s+(\S+)", text)
        return {"ctr": found[0] if found else "", "containerd": found[-1] if found else "",
                "oci_runtime": "runc " + runc_version()}

    def launch(self, bundle: Path, cid: str) -> subprocess.CompletedProcess:
        return _launch(self.ctr("run", "-d", "--config", str(bundle / "config.json"), cid), bundle)

    def pid_of(self, cid: str) -> Optional[int]:
        for line in _run(self.ctr("task", "ls")).stdout.splitlines()[1:]:
            parts = line.split()
            if parts and parts[0] == cid and parts[1].isdigit():
                return int(parts[1])
        return None

    def remove(self, cid: str) -> None:
        _run(self.ctr("task", "kill", "-s", "KILL", cid))
        for dummy in range(100):
            if cid not in _run(self.ctr("task", "ls", "-q")).stdout.split():
                break
            _run(self.ctr("task", "rm", "-f", cid))
            time.sleep(0.05)
        _run(self.ctr("container", "rm", cid))


# --------------------------------------------------------------------------------- LXC
class Lxc(Driver):
    """``lxc.sysctl.KEY = VALUE`` in a busybox container (private lxcpath; LXC has no validator)."""

    name = "lxc"
    path = "LXC: lxc.sysctl.* in a container's config (community.general.lxc_container container_config)"

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.names: List[str] = []

    def start(self) -> None:
        ct._need("lxc-create", "lxc-start", "lxc-info", "lxc-stop", "lxc-destroy")
        self.workdir.mkdir(parents=True, exist_ok=True)

    def version(self) -> Dict[str, str]:
        return {"lxc": _cmd_version(["lxc-start", "--version"])}

    def config(self, mode: str, key: Key, value: str) -> List[str]:
        ns = MODE_NAMESPACE.get(mode)
        lines = ["lxc.net.0.type = %s" % ("none" if ns == "net" else "empty"), "lxc.apparmor.profile = unconfined"]
        if ns in ("ipc", "uts"):
            lines.append("lxc.namespace.keep = %s" % ns)
        lines.append("lxc.sysctl.%s = %s" % (key.key, value))
        return lines

    def lxc(self, tool: str, name: str, *args) -> subprocess.CompletedProcess:
        return _run([tool, "-P", str(self.workdir), "-n", name] + list(args))

    def try_case(self, index: int, key: Key, mode: str, value: str) -> Outcome:
        name = "nsg-acc-lxc-%d" % index
        conf = self.workdir / ("%s.conf" % name)
        conf.write_text("\n".join(self.config(mode, key, value)) + "\n")
        log = self.workdir / ("%s.log" % name)
        self.names.append(name)
        try:
            made = self.lxc("lxc-create", name, "-t", "busybox", "-f", str(conf))
            if made.returncode != 0:
                return Outcome(False, "client", first_line_error(made.stderr))
            started = self.lxc("lxc-start", name, "-d", "-l", "ERROR", "-o", str(log))
            running = started.returncode == 0 and self.lxc("lxc-wait", name, "-s", "RUNNING", "-t", "5").returncode == 0
            pid_text = self.lxc("lxc-info", name, "-pH").stdout.strip()
            if started.returncode == 0 and running and pid_text.isdigit():
                return self.outcome_running(int(pid_text), key)
            text = log.read_text() if log.exists() else started.stderr
            errors = [ln for ln in text.splitlines() if "sysctl" in ln] or text.splitlines() or [started.stderr]
            return Outcome(False, "container-init", _lxc_line(errors[0]))
        finally:
            self.lxc("lxc-stop", name, "-k")
            self.lxc("lxc-destroy", name, "-f")

    def stop(self) -> None:
        for name in self.names:
            if (self.workdir / name).exists():
                self.lxc("lxc-destroy", name, "-f")


def _lxc_line(line: str) -> str:
    """An LXC log line without its program/name/timestamp prefix."""
    return re.sub(r"^\S+\s+\S+\s+\d{8}\d*\.\d+\s+", "", line.strip())
