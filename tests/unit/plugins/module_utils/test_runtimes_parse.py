"""Pure parsers of runtime metadata, on recorded files (``fixtures/runtimes/host``) and on the
documented shapes of runtimes this machine cannot run (CRI-O, systemd-nspawn with machined,
the systemd cgroup driver). The constructed inputs are marked as such."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ansible_collections.nsguard.sysctl.plugins.module_utils import procinfo
from ansible_collections.nsguard.sysctl.plugins.module_utils import runtimes_parse as rp

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "runtimes" / "host"
ROOT = FIX / "root"
EXPECTED = {(c["runtime"], c["name"]): c for c in json.loads((FIX / "expected.json").read_text())}
ID64 = "0123456789abcdef" * 4
UID = "4b7f0c1e-2d3a-4f5b-8c6d-7e8f9a0b1c2d"


def rec(runtime, name=None):
    return next(c for (r, n), c in EXPECTED.items() if r == runtime and (name is None or n == name))


def proc_file(pid, name):
    return (FIX / "proc" / str(pid) / name).read_bytes()


def argv(pid):
    return procinfo.parse_cmdline(proc_file(pid, "cmdline"))


def parent_of(pid):
    text = proc_file(pid, "stat").decode()
    return int(text[text.rindex(")") + 2:].split()[1])


def one(pattern):
    matches = sorted(ROOT.glob(pattern))
    assert len(matches) == 1, (pattern, matches)
    return matches[0]


def load(pattern):
    return json.loads(one(pattern).read_text())


# --- cgroup paths ----------------------------------------------------------------------------

@pytest.mark.parametrize("runtime,field", [("docker", "id"), ("podman", "id"), ("lxc", "name")])
def test_cgroup_hints_of_recorded_containers(runtime, field):
    c = rec(runtime)
    paths = procinfo.cgroup_paths(procinfo.parse_cgroup(proc_file(c["pid"], "cgroup").decode()))
    hints = rp.cgroup_hints(paths)
    assert [(h["runtime"], h[field]) for h in hints] == [(runtime, c[field])]


def test_cgroup_hint_of_recorded_kubepods_path():
    app = rec("containerd", "app")
    paths = procinfo.cgroup_paths(procinfo.parse_cgroup(proc_file(app["pid"], "cgroup").decode()))
    hints = rp.cgroup_hints(paths)
    assert [(h["runtime"], h["id"], h["pod_uid"]) for h in hints] == [(None, app["id"], UID)]


def test_recorded_runc_cgroup_names_no_runtime():
    """runc's default cgroup is /<id>: nothing to go by; RuntimeIndex matches it by pid."""
    c = rec("runc")
    paths = procinfo.cgroup_paths(procinfo.parse_cgroup(proc_file(c["pid"], "cgroup").decode()))
    assert rp.cgroup_hints(paths) == []


@pytest.mark.parametrize("path,expected", [
    # constructed: the systemd cgroup driver's names, per runtime documentation
    ("/system.slice/docker-%s.scope" % ID64, ("docker", ID64)),
    ("/machine.slice/libpod-%s.scope/container" % ID64, ("podman", ID64)),
    ("/machine.slice/libpod-conmon-%s.scope" % ID64, None),
    ("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod%s.slice/cri-containerd-%s.scope"
     % (UID.replace("-", "_"), ID64), ("containerd", ID64)),
    ("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod%s.slice/crio-%s.scope"
     % (UID.replace("-", "_"), ID64), ("cri-o", ID64)),
    ("/kubepods.slice/kubepods-pod%s.slice/crio-conmon-%s.scope" % (UID.replace("-", "_"), ID64), None),
    ("/kubepods/burstable/pod%s/%s" % (UID, ID64), (None, ID64)),
    ("/lxc.payload.web01", ("lxc", "web01")),
    ("/lxc/web01/init.scope", ("lxc", "web01")),
    ("/machine.slice/machine-build\\x2dbox.scope/payload", ("systemd-nspawn", "build-box")),
    ("/system.slice/systemd-nspawn@db.service", ("systemd-nspawn", "db")),
    ("/docker/%s/inner" % ID64, ("docker", ID64)),
    ("/user.slice/user-0.slice/session-1.scope", None),
    ("/", None),
    ("", None),
])
def test_cgroup_hints_of_documented_paths(path, expected):
    hints = rp.cgroup_hints([path])
    got = [(h["runtime"], h.get("id") or h.get("name")) for h in hints]
    assert got == ([expected] if expected else [])


def test_cgroup_hints_pod_uid_from_systemd_slice():
    path = ("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod%s.slice/cri-containerd-%s.scope"
            % (UID.replace("-", "_"), ID64))
    assert rp.cgroup_hints([path])[0]["pod_uid"] == UID


def test_cgroup_hints_deduplicate_v1_hierarchies():
    paths = ["/docker/%s" % ID64, "/process_api/x/docker/%s" % ID64, "/docker/%s" % ID64]
    assert len(rp.cgroup_hints(paths)) == 1


# --- command lines ---------------------------------------------------------------------------

def test_cli_options_forms():
    table = {"--root": "root", "-r": "root", "--arg": "args", "--name": "name"}
    args = ["-x", "--root=/a", "--flag", "--arg", "1", "--arg=2", "-r", "/b", "positional", "--name"]
    assert rp.cli_options(args, table, repeated=("args",)) == {"root": "/b", "args": ["1", "2"]}


def test_recorded_dockerd_cmdline():
    dockerd = next(p for p in (FIX / "proc").iterdir() if p.name.isdigit()
                   and b"(dockerd)" in (p / "stat").read_bytes())
    opts = rp.parse_dockerd_cmdline(procinfo.parse_cmdline((dockerd / "cmdline").read_bytes()))
    assert opts["data_root"] == "/tmp/nsg-rt-rec/docker/data"
    assert opts["exec_root"] == "/tmp/nsg-rt-rec/docker/exec"
    assert opts["sockets"] == ["/tmp/nsg-rt-rec/docker/docker.sock"]
    assert opts["pidfile"] == "/tmp/nsg-rt-rec/docker/dockerd.pid"


def test_dockerd_socket_activation_and_daemon_json():
    # constructed: Debian's docker.service and a daemon.json
    assert rp.parse_dockerd_cmdline(["/usr/sbin/dockerd", "-H", "fd://", "--containerd=/run/containerd/containerd.sock"]) \
        == {"containerd": "/run/containerd/containerd.sock", "sockets": ["/run/docker.sock"]}
    assert rp.parse_docker_daemon_json({"data-root": "/srv/docker", "hosts": ["unix:///srv/d.sock", "tcp://0:2375"]}) \
        == {"data_root": "/srv/docker", "sockets": ["/srv/d.sock"]}
    assert rp.parse_docker_daemon_json(["not", "an", "object"]) == {}


def test_recorded_shim_cmdline():
    docker = rec("docker")
    shim = rp.parse_shim_cmdline(argv(parent_of(docker["pid"])))
    assert shim["namespace"] == "moby" and shim["id"] == docker["id"]
    assert shim["address"].endswith("/containerd/containerd.sock")


def test_recorded_conmon_cmdline():
    podman = rec("podman")
    opts = rp.parse_conmon_cmdline(argv(parent_of(podman["pid"])))
    assert opts["id"] == podman["id"] and opts["name"] == podman["name"]
    assert opts["bundle"] == "/tmp/nsg-rt-rec/podman/root/overlay-containers/%s/userdata" % podman["id"]
    assert opts["manager"] == "podman"
    assert (opts["root"], opts["runroot"], opts["tmpdir"]) == (
        "/tmp/nsg-rt-rec/podman/root", "/tmp/nsg-rt-rec/podman/run", "/tmp/nsg-rt-rec/podman/tmp")
    assert opts["runtime"] == "/usr/bin/runc"


def test_crio_conmon_cmdline():
    # constructed from CRI-O 1.2x's conmon invocation
    args = ["/usr/bin/conmon", "-b", "/run/containers/storage/overlay-containers/%s/userdata" % ID64,
            "-c", ID64, "--exit-dir", "/var/run/crio/exits", "-l", "/var/log/pods/x/0.log",
            "--log-level", "info", "-n", "k8s_web_web-7d4b9_shop_%s_0" % UID, "-P", "/run/x/conmon-pidfile",
            "-p", "/run/x/pidfile", "--persist-dir", "/var/lib/containers/storage/overlay-containers/x/userdata",
            "-r", "/usr/bin/runc", "--runtime-arg", "--root=/run/runc", "--socket-dir-path", "/var/run/crio", "--syslog",
            "-u", ID64, "-s"]
    opts = rp.parse_conmon_cmdline(args)
    assert opts["id"] == ID64 and opts["runtime_args"] == ["--root=/run/runc"]
    assert "manager" not in opts and "root" not in opts


@pytest.mark.parametrize("args,expected", [
    # constructed: systemd-nspawn invocations
    (["systemd-nspawn", "-D", "/var/lib/machines/web/", "--private-network", "--as-pid2", "sleep", "1"],
     {"name": "web", "private_network": True}),
    (["systemd-nspawn", "--machine=db", "--directory=/srv/db", "-b"], {"name": "db", "private_network": False}),
    (["systemd-nspawn", "-i", "/var/lib/machines/build.raw", "--network-veth"], {"name": "build", "private_network": True}),
    (["systemd-nspawn", "--register=no", "--keep-unit", "-D", "/tmp/root"], {"name": "root", "private_network": False}),
])
def test_nspawn_cmdline(args, expected):
    got = rp.parse_nspawn_cmdline(args)
    assert {k: got[k] for k in expected} == expected
    assert got["host_network"] is (not expected["private_network"])


def test_lxc_parent_cmdlines():
    lxc = rec("lxc")
    assert rp.parse_lxc_monitor_cmdline(argv(parent_of(lxc["pid"]))) == {
        "lxcpath": "/tmp/nsg-rt-rec/lxc", "name": lxc["name"]}
    # constructed: what `lxc-start -d` leaves (the monitor rewrites its argv)
    assert rp.parse_lxc_monitor_cmdline(["[lxc monitor] /var/lib/lxc web01"]) == {"lxcpath": "/var/lib/lxc", "name": "web01"}
    assert rp.parse_lxc_monitor_cmdline(["[lxc monitor] /my lxc path web01"]) == {"lxcpath": "/my lxc path", "name": "web01"}
    assert rp.parse_lxc_monitor_cmdline(["lxc-start", "-n", "x", "-d"]) == {"lxcpath": "/var/lib/lxc", "name": "x"}
    assert rp.parse_lxc_monitor_cmdline(["[lxc monitor]"]) is None
    assert rp.parse_lxc_monitor_cmdline(["sleep", "1"]) is None
    assert rp.parse_lxc_monitor_cmdline([]) is None


# --- state files -----------------------------------------------------------------------------

def test_recorded_docker_container():
    docker = rec("docker")
    config = load("tmp/nsg-rt-rec/docker/data/containers/*/config.v2.json")
    hostconfig = load("tmp/nsg-rt-rec/docker/data/containers/*/hostconfig.json")
    got = rp.parse_docker_container(config, hostconfig)
    assert (got["id"], got["name"], got["image"], got["pid"]) == (docker["id"], docker["name"], docker["image"], docker["pid"])
    assert got["requested"] == docker["requested"]
    assert got["labels"] == docker["labels"]
    assert (got["host_network"], got["host_ipc"], got["host_uts"]) == (False, False, False)
    assert got["privileged"] is False
    assert got["sandbox_key"].startswith("/tmp/nsg-rt-rec/docker/exec/netns/")


def test_docker_inspect_shape_and_host_modes():
    # constructed: `docker inspect` output of a --network host --ipc host container that stopped
    doc = {"Id": ID64, "Name": "/web", "Config": {"Image": "nginx:1", "Labels": None},
           "State": {"Running": False, "Pid": 0},
           "HostConfig": {"NetworkMode": "host", "IpcMode": "host", "UTSMode": "", "Sysctls": None}}
    got = rp.parse_docker_container(doc)
    assert (got["name"], got["image"], got["pid"], got["labels"], got["requested"]) == ("web", "nginx:1", None, {}, {})
    assert (got["host_network"], got["host_ipc"], got["host_uts"]) == (True, True, False)


@pytest.mark.parametrize("doc", [[], "x", {"Name": "/no-id"}, {"ID": 5}])
def test_docker_container_rejects_bad_documents(doc):
    with pytest.raises(ValueError):
        rp.parse_docker_container(doc)


def test_podman_inspect_shape():
    # constructed from podman 4.3 `podman inspect` (no HostConfig.Sysctls in that version)
    doc = {"Id": ID64, "Name": "web", "ImageName": "localhost/web:1", "Config": {"Labels": {"a": "b"},
           "CreateCommand": ["podman", "run", "--sysctl", "net.core.somaxconn=1024", "web"]},
           "State": {"Pid": 42}, "Pod": ""}
    got = rp.parse_podman_inspect(doc)
    assert (got["name"], got["image"], got["labels"], got["pid"], got["pod_id"]) == ("web", "localhost/web:1", {"a": "b"}, 42, None)
    assert "requested" not in got
    with pytest.raises(ValueError):
        rp.parse_podman_inspect({"Name": "x"})


def test_recorded_storage_containers():
    podman = rec("podman")
    got = rp.parse_storage_containers(load("tmp/nsg-rt-rec/podman/root/overlay-containers/containers.json"))
    assert got[podman["id"]]["name"] == podman["name"]
    assert got[podman["id"]]["image"] == podman["image"]


def test_storage_containers_tolerates_bad_entries():
    got = rp.parse_storage_containers([{"id": "a", "names": ["n"], "metadata": "{broken"}, "junk", {"no": "id"},
                                       {"id": "b", "metadata": "[1]"}])
    assert got == {"a": {"id": "a", "name": "n", "image": None, "image_id": None, "pod_name": None},
                   "b": {"id": "b", "name": None, "image": None, "image_id": None, "pod_name": None}}
    with pytest.raises(ValueError):
        rp.parse_storage_containers({"id": "a"})


def test_recorded_oci_configs():
    docker = load("tmp/nsg-rt-rec/docker/exec/containerd/daemon/io.containerd.runtime.v2.task/moby/*/config.json")
    got = rp.parse_oci_config(docker)
    assert "runtime" not in got  # dockerd writes no annotations: the containerd namespace tells
    assert got["requested"]["net.core.somaxconn"] == "1024"
    assert got["namespaces"] == {"mnt": "", "net": "", "uts": "", "pid": "", "ipc": ""}
    podman = rp.parse_oci_config(load("tmp/nsg-rt-rec/podman/root/overlay-containers/*/userdata/config.json"))
    # podman writes io.kubernetes.cri-o.* keys too; io.container.manager wins.
    assert podman["runtime"] == "podman"
    assert any(k.startswith("io.kubernetes.cri-o.") for k in podman["annotations"])
    assert podman["requested"] == {"net.core.somaxconn": "1024", "net.ipv4.ping_group_range": "0 0"}


def test_recorded_cri_annotations():
    app = rec("containerd", "app")
    got = rp.parse_oci_config(json.loads(one(
        "tmp/nsg-rt-rec/docker/exec/containerd/daemon/io.containerd.runtime.v2.task/k8s.io/%s/config.json" % app["id"]
    ).read_text()))
    assert (got["runtime"], got["name"], got["image"], got["pod_name"], got["pod_namespace"], got["container_type"]) == (
        "containerd", "app", app["image"], app["pod_name"], app["pod_namespace"], "container")
    assert got["requested"] == {}
    assert got["namespaces"]["net"].startswith("/proc/")


def test_crio_annotations():
    # constructed: the annotations CRI-O (pkg/annotations) writes for a pod's container
    annotations = {
        "io.container.manager": "cri-o",
        "io.kubernetes.cri-o.ContainerType": "container",
        "io.kubernetes.cri-o.ContainerName": "k8s_web_web-7d4b9_shop_%s_0" % UID,
        "io.kubernetes.container.name": "web",
        "io.kubernetes.pod.name": "web-7d4b9",
        "io.kubernetes.pod.namespace": "shop",
        "io.kubernetes.cri-o.ImageName": "registry.example/web:1.2",
        "io.kubernetes.cri-o.Image": "sha256:" + ID64,
        "io.kubernetes.cri-o.SandboxID": ID64,
        "io.kubernetes.cri-o.Labels": json.dumps({"app": "web", "io.kubernetes.pod.name": "web-7d4b9"}),
    }
    got = rp.classify_annotations(annotations)
    assert (got["runtime"], got["name"], got["pod_name"], got["pod_namespace"], got["image"], got["sandbox_id"]) == (
        "cri-o", "web", "web-7d4b9", "shop", "registry.example/web:1.2", ID64)
    assert got["labels"]["app"] == "web"
    sandbox = rp.classify_annotations(dict(annotations, **{"io.kubernetes.cri-o.ContainerType": "sandbox",
                                                           "io.kubernetes.cri-o.Labels": "{broken"}))
    assert sandbox["name"] == "POD" and "labels" not in sandbox


def test_oci_image_annotation_and_nothing():
    assert rp.classify_annotations({"org.opencontainers.image.ref.name": "busybox"}) == {"image": "busybox"}
    assert rp.classify_annotations(None) == {}
    with pytest.raises(ValueError):
        rp.parse_oci_config([])


def test_host_flags():
    joined = {"net": "/proc/7/ns/net", "ipc": "", "pid": ""}
    assert rp.host_flags(joined) == {"host_network": None, "host_ipc": False, "host_uts": True}
    assert rp.host_flags(joined, lambda path, nstype: nstype == "net") == {
        "host_network": True, "host_ipc": False, "host_uts": True}
    assert rp.oci_namespaces([{"type": "network", "path": "/x"}, {"type": "bogus"}, "junk", {"type": "NEWUTS"}]) == {
        "net": "/x", "uts": ""}
    assert rp.oci_namespaces(None) == {}


def test_recorded_runc_state():
    runc = rec("runc")
    got = rp.parse_runc_state(load("run/runc/%s/state.json" % runc["id"]))
    assert (got["runtime"], got["id"], got["pid"], got["image"]) == ("runc", runc["id"], runc["pid"], runc["image"])
    assert got["requested"] == runc["requested"]
    assert isinstance(got["pid_start"], int) and got["pid_start"] > 0
    assert got["bundle"] == "/tmp/nsg-rt-rec/runc/%s" % runc["id"]
    assert got["namespaces"]["net"] == ""
    with pytest.raises(ValueError):
        rp.parse_runc_state({"config": {}})


def test_recorded_lxc_config():
    lxc = rec("lxc")
    got = rp.parse_lxc_config(one("tmp/nsg-rt-rec/lxc/*/config").read_text())
    assert got["requested"] == lxc["requested"]
    assert got["hostname"] == lxc["name"]  # lxc-create wrote it quoted
    assert got["image"] == "lxc-busybox"
    assert (got["net_types"], got["host_network"], got["host_ipc"], got["host_uts"]) == (["empty"], False, False, False)


def test_lxc_config_variants():
    # constructed: lxc-download's comments, a shared host netns, kept namespaces
    text = "\n".join([
        "# Template used to create this container: /usr/share/lxc/templates/lxc-download",
        "# Parameters passed to the template: --dist debian --release bookworm --arch amd64",
        "lxc.include = /usr/share/lxc/config/common.conf",
        "lxc.net.0.type = none",
        "lxc.namespace.keep = ipc uts",
        "lxc.sysctl.net.ipv4.ip_forward = 1",
        "lxc.sysctl.kernel.shmmax=1073741824",
        "lxc.sysctl.vm.empty =",
        "lxc.sysctl.= 1",
        "lxc.sysctl.. = 2",
        "garbage line without equals",
    ])
    got = rp.parse_lxc_config(text)
    assert got["image"] == "debian:bookworm"
    assert got["requested"] == {"net.ipv4.ip_forward": "1", "kernel.shmmax": "1073741824"}
    assert (got["host_network"], got["host_ipc"], got["host_uts"]) == (True, True, True)
    assert got["includes"] == ["/usr/share/lxc/config/common.conf"]
    assert rp.parse_lxc_config("")["host_network"] is None


def test_machine_file():
    # constructed: /run/systemd/machines/NAME as systemd-machined writes it
    text = "# This is private data. Do not parse.\nNAME=web\nSCOPE=machine-web.scope\nSERVICE=systemd-nspawn\n" \
           "ROOT=/var/lib/machines/web\nCLASS=container\nLEADER=4242\n"
    assert rp.parse_machine_file(text) == {"name": "web", "pid": 4242, "class": "container", "service": "systemd-nspawn",
                                           "root": "/var/lib/machines/web", "scope": "machine-web.scope"}
    assert rp.parse_machine_file("LEADER=x")["pid"] is None


def test_recorded_containerd_toml():
    text = one("tmp/nsg-rt-rec/docker/exec/containerd/containerd.toml").read_text()
    assert rp.parse_containerd_toml_paths(text) == {"root": "/tmp/nsg-rt-rec/docker/data/containerd/daemon",
                                                    "state": "/tmp/nsg-rt-rec/docker/exec/containerd/daemon"}
    assert rp.parse_containerd_toml_paths('[grpc]\nroot = "/not/top/level"\n') == {}


def test_unescape_systemd():
    assert rp.unescape_systemd("a\\x2db\\x2fc") == "a-b/c"
