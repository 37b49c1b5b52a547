"""RuntimeIndex over a recorded host: metadata and /proc files that ``fixtures/runtimes/record.py``
copied from real Docker, Podman, runc, LXC containers and a containerd pod (scrubbed).

The index reads them through ``root=``/``proc=`` exactly as it reads a live host; the truth is
``expected.json`` (what the harness knew when it started each container)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from ansible_collections.nsguard.sysctl.plugins.module_utils.runtime_paths import DEFAULT_PATHS
from ansible_collections.nsguard.sysctl.plugins.module_utils.runtimes import RuntimeIndex

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "runtimes" / "host"
EXPECTED = json.loads((FIX / "expected.json").read_text())
LIVE = json.loads((FIX / "live.json").read_text())
CONTAINERS = [c for c in EXPECTED if c["runtime"] != "netns"]
NETNS = next(c for c in EXPECTED if c["runtime"] == "netns")


def materialize(dest: Path) -> Path:
    """A copy of the recorded host with the shims' ``cwd`` links made from ``cwd.link``."""
    shutil.copytree(FIX, dest)
    for link in dest.glob("proc/*/cwd.link"):
        os.symlink(link.read_text().strip(), link.with_name("cwd"))
    return dest


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    return materialize(tmp_path_factory.mktemp("recorded") / "host")


def recorded_index(base: Path, **kwargs) -> RuntimeIndex:
    return RuntimeIndex(use_cli=False, root=str(base / "root"), proc=str(base / "proc"), **kwargs)


def by_runtime(runtime, name=None):
    return next(c for c in CONTAINERS if c["runtime"] == runtime and (name is None or c["name"] == name))


@pytest.fixture
def copied(tmp_path):
    """A writable copy of the recorded host, to break things in."""
    return materialize(tmp_path / "host")


@pytest.mark.parametrize("expected", CONTAINERS, ids=lambda c: "%s-%s" % (c["runtime"], c["name"]))
def test_identifies_every_recorded_container(expected, recorded):
    result = recorded_index(recorded).identify(pids=[expected["pid"]], init_pid=expected["pid"], ns={})
    ident = result["identity"]
    assert (ident["runtime"], ident["id"], ident["name"], ident["image"]) == (
        expected["runtime"], expected["id"], expected["name"], expected["image"])
    assert ident["pod_name"] == expected.get("pod_name")
    assert ident["pod_namespace"] == expected.get("pod_namespace")
    assert result["requested"]["net.core.somaxconn"] == "1024"
    assert result["errors"] == []
    if expected["runtime"] != "podman":  # podman keeps labels in its bolt DB: only `podman inspect` has them
        for key, value in expected["labels"].items():
            assert ident["labels"][key] == value


@pytest.mark.parametrize("expected", CONTAINERS, ids=lambda c: "%s-%s" % (c["runtime"], c["name"]))
def test_offline_index_agrees_with_live_one(expected, recorded):
    """The recorded tree answers as the live host did (the live index could also use CLIs)."""
    live = LIVE[expected["id"]]
    offline = recorded_index(recorded).identify(pids=[expected["pid"]], init_pid=expected["pid"], ns={})
    for field in ("runtime", "id", "name", "image", "pod_name", "pod_namespace"):
        assert offline["identity"][field] == live["identity"][field], field
    assert offline["requested"] == live["requested"]
    assert offline["requested_source"] == live["requested_source"]
    for flag in ("host_network", "host_ipc", "host_uts"):
        if expected["name"] == "app":
            # It joined the sandbox's namespaces by /proc path; only the live host could stat it.
            assert (offline[flag], live[flag]) == (None, False)
        else:
            assert offline[flag] is False and live[flag] is False


def test_evidence_for_each_runtime(recorded):
    index = recorded_index(recorded)
    docker = index.identify(pids=[by_runtime("docker")["pid"]], init_pid=by_runtime("docker")["pid"])
    sources = docker["identity"]["sources"]
    assert any(s.startswith("cgroup:/docker/") for s in sources)
    assert any(s.startswith("parent:shim:") for s in sources)
    assert any(s.endswith("/config.v2.json") for s in sources)
    podman = index.identify(pids=[by_runtime("podman")["pid"]], init_pid=by_runtime("podman")["pid"])
    assert any(s.startswith("cgroup:/libpod_parent/libpod-") for s in podman["identity"]["sources"])
    assert any(s.startswith("parent:conmon:") for s in podman["identity"]["sources"])
    lxc = index.identify(pids=[by_runtime("lxc")["pid"]], init_pid=by_runtime("lxc")["pid"])
    assert "cgroup:/lxc.payload.%s" % by_runtime("lxc")["name"] in lxc["identity"]["sources"]
    assert any(s.startswith("parent:lxc:") for s in lxc["identity"]["sources"])


def test_docker_separates_user_sysctls_from_runtime_defaults(recorded):
    docker = by_runtime("docker")
    result = recorded_index(recorded).identify(pids=[docker["pid"]], init_pid=docker["pid"])
    # The bundle holds what runc applied; hostconfig.json holds what the user asked for.
    assert result["requested_source"].endswith("/config.json")
    assert result["requested_defaults"] == sorted(set(result["requested"]) - {"net.core.somaxconn"})
    assert result["requested_defaults"]  # docker 20.10 adds ip_unprivileged_port_start, ping_group_range


def test_pod_sysctls_come_from_the_sandbox(recorded):
    app = by_runtime("containerd", "app")
    sandbox = by_runtime("containerd", "POD")
    result = recorded_index(recorded).identify(pids=[app["pid"]], init_pid=app["pid"])
    assert result["requested"] == {"net.core.somaxconn": "1024"}
    assert sandbox["id"] in result["requested_source"]
    assert result["identity"]["labels"]["io.containerd.namespace"] == "k8s.io"


def test_named_netns_without_processes(recorded):
    result = recorded_index(recorded).identify(pids=[], init_pid=None, ns={"net": NETNS["net"]})
    assert result["identity"]["runtime"] == "netns"
    assert result["identity"]["netns_name"] == result["identity"]["name"] == NETNS["name"]


def test_docker_sandbox_netns_alone_names_the_container(copied):
    """No process evidence at all (e.g. a set seen only through docker's netns bind mount)."""
    docker = by_runtime("docker")
    index = recorded_index(copied)
    index.scan()
    # The recorded nsfs bind mount is not a real nsfs file here; give it the inode it had.
    mountinfo = (copied / "proc" / "self" / "mountinfo").read_text()
    line = next(l for l in mountinfo.splitlines() if "/docker/exec/netns/" in l)
    inode = int(line.split("net:[")[1].split("]")[0])
    index._sandbox_netns[inode] = docker["id"]
    result = index.identify(pids=[], init_pid=None, ns={"net": inode})
    assert (result["identity"]["runtime"], result["identity"]["name"]) == ("docker", docker["name"])


def test_missing_everything_is_unknown_not_an_error(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "proc").mkdir()
    result = recorded_index(tmp_path).identify(pids=[4242], init_pid=4242, ns={"net": 1})
    assert result["identity"]["runtime"] == "unknown"
    assert result["requested"] == {} and result["host_network"] is None
    assert [e["stage"] for e in result["errors"]] == ["identify"]
    assert "4242" in result["errors"][0]["message"] and "exited" in result["errors"][0]["message"]


def test_vanished_pid_in_a_recorded_host(recorded):
    result = recorded_index(recorded).identify(pids=[999999], init_pid=999999, ns={})
    assert result["identity"]["runtime"] == "unknown"
    assert "pid 999999" in result["errors"][0]["message"]


def test_malformed_docker_config_names_the_file(copied):
    docker = by_runtime("docker")
    bad = next(copied.glob("root/tmp/nsg-rt-rec/docker/data/containers/*/config.v2.json"))
    bad.write_text('{"ID": "truncated')
    result = recorded_index(copied).identify(pids=[docker["pid"]], init_pid=docker["pid"])
    # Still docker (containerd's "moby" bundle and the cgroup say so), and the error names the file.
    assert result["identity"]["runtime"] == "docker"
    assert result["identity"]["id"] == docker["id"]
    assert result["requested"]["net.core.somaxconn"] == "1024"
    messages = [e["message"] for e in result["errors"]]
    assert any(str(bad).split("/root", 1)[1] in m and "malformed JSON" in m for m in messages), messages


def test_malformed_runc_state_is_reported_once(copied):
    runc = by_runtime("runc")
    state = copied / "root" / "run" / "runc" / runc["id"] / "state.json"
    state.write_text("[1, 2")
    index = recorded_index(copied)
    result = index.identify(pids=[runc["pid"]], init_pid=runc["pid"])
    assert result["identity"]["runtime"] == "unknown"  # runc has nothing else to go by
    leftover = index.unreported_errors()
    assert any("/run/runc/%s/state.json" % runc["id"] in e["message"] for e in leftover)


def test_json_of_the_wrong_shape(copied):
    lst = copied / "root" / "tmp" / "nsg-rt-rec" / "podman" / "root" / "overlay-containers" / "containers.json"
    lst.write_text('{"not": "a list"}')
    podman = by_runtime("podman")
    index = recorded_index(copied)
    result = index.identify(pids=[podman["pid"]], init_pid=podman["pid"])
    assert result["identity"]["runtime"] == "podman"
    assert result["identity"]["name"] == podman["name"]  # conmon's -n still names it
    assert result["identity"]["image"] is None           # only containers.json had it
    assert any("containers.json" in e["message"] and "not a JSON list" in e["message"] for e in index.errors)


def test_reused_pid_is_not_taken_for_the_container(copied):
    """runc records its init's start time: a process with that pid but another start time is
    someone else."""
    runc = by_runtime("runc")
    stat = copied / "proc" / str(runc["pid"]) / "stat"
    fields = stat.read_text().split(" ")
    fields[21] = str(int(fields[21]) + 12345)
    stat.write_text(" ".join(fields))
    result = recorded_index(copied).identify(pids=[runc["pid"]], init_pid=runc["pid"])
    assert result["identity"]["runtime"] == "unknown"


def test_unreadable_file_is_an_error(copied):
    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    lxc = by_runtime("lxc")
    config = next(copied.glob("root/tmp/nsg-rt-rec/lxc/*/config"))
    config.chmod(0)
    result = recorded_index(copied).identify(pids=[lxc["pid"]], init_pid=lxc["pid"])
    assert any("cannot read" in e["message"] for e in result["errors"])


def test_directory_where_a_file_should_be(copied):
    """A config.json that is a directory: an error naming it, the rest goes on."""
    docker = by_runtime("docker")
    bundle = next(copied.glob("root/tmp/nsg-rt-rec/docker/exec/containerd/daemon/io.containerd.runtime.v2.task/moby/*"))
    (bundle / "config.json").unlink()
    (bundle / "config.json").mkdir()
    result = recorded_index(copied).identify(pids=[docker["pid"]], init_pid=docker["pid"])
    assert result["identity"]["name"] == docker["name"]
    # runc's state.json has the same sysctls as the bundle had.
    assert result["requested_source"].endswith("/state.json")
    assert result["requested"]["net.core.somaxconn"] == "1024"
    assert any("config.json: a directory, not a regular file" in e["message"] for e in result["errors"])


def test_explicit_paths_without_discovery(copied):
    """Non-default locations given by the caller (the module could pass them as options)."""
    lxc = by_runtime("lxc")
    index = recorded_index(copied, discover=False, paths={"lxc_paths": ["/tmp/nsg-rt-rec/lxc"]})
    result = index.identify(pids=[lxc["pid"]], init_pid=lxc["pid"])
    assert result["identity"]["runtime"] == "lxc"
    assert result["requested"] == {"net.core.somaxconn": "1024"}
    assert result["identity"]["image"] == "lxc-busybox"


def _fake_process(proc: Path, pid: int, comm: str, ppid: int, argv: list, cgroup: str) -> None:
    """Constructed /proc entries (systemd-nspawn cannot run on this machine: no system bus)."""
    base = proc / str(pid)
    base.mkdir(parents=True)
    fields = ["S", str(ppid)] + ["0"] * 17 + ["4242"] + ["0"] * 10
    (base / "stat").write_text("%d (%s) %s\n" % (pid, comm, " ".join(fields)))
    (base / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (base / "cgroup").write_text("0::%s\n" % cgroup)


def test_systemd_nspawn_by_machined_and_by_parent(copied):
    proc = copied / "proc"
    _fake_process(proc, 90001, "systemd", 90000, ["/sbin/init"], "/machine.slice/machine-web\\x2d1.scope/init.scope")
    machines = copied / "root" / "run" / "systemd" / "machines"
    machines.mkdir(parents=True)
    (machines / "web-1").write_text("NAME=web-1\nSERVICE=systemd-nspawn\nCLASS=container\nLEADER=90001\n")
    (machines / "vm1").write_text("NAME=vm1\nSERVICE=libvirt-qemu\nCLASS=vm\nLEADER=90009\n")
    nspawn = ["systemd-nspawn", "--register=no", "--keep-unit", "-D", "/var/lib/machines/db", "--private-network"]
    _fake_process(proc, 90010, "systemd-nspawn", 1, nspawn, "/")
    _fake_process(proc, 90011, "systemd-nspawn", 90010, ["systemd-nspawn"], "/")
    _fake_process(proc, 90012, "sh", 90011, ["sh"], "/")
    index = recorded_index(copied)
    web = index.identify(pids=[90001], init_pid=90001)
    assert (web["identity"]["runtime"], web["identity"]["name"]) == ("systemd-nspawn", "web-1")
    assert "pid:90001" in web["identity"]["sources"]
    db = index.identify(pids=[90012], init_pid=90012)
    assert (db["identity"]["runtime"], db["identity"]["name"], db["host_network"]) == ("systemd-nspawn", "db", False)
    assert db["requested"] == {}
    assert index.identify(pids=[90009], init_pid=90009)["identity"]["runtime"] == "unknown"


def test_reads_stay_below_the_deepest_runtime_directory_also_after_discovery():
    """``_beneath``: the deepest configured directory holding a file, recomputed when discovery
    adds one; a configured file (daemon.json) may be a link; elsewhere the file's directory."""
    empty = {k: [] for k in DEFAULT_PATHS}
    index = RuntimeIndex(use_cli=False, discover=False, paths=dict(
        empty, docker_roots=["/srv/d"], runc_roots=["/srv/d/exec/runtime-runc/*"], docker_daemon_json=["/etc/d.json"]))
    assert index._beneath("/srv/d/containers/x/config.v2.json") == ("/srv/d", False)
    assert index._beneath("/srv/d/exec/runtime-runc/moby/c/state.json") == ("/srv/d/exec/runtime-runc", False)
    assert index._beneath("/srv/d/exec/containerd/task/moby/c/config.json") == ("/srv/d", False)
    index._extend("containerd_task_dirs", "/srv/d/exec/containerd/task")
    assert index._beneath("/srv/d/exec/containerd/task/moby/c/config.json") == ("/srv/d/exec/containerd/task", False)
    assert index._beneath("/etc/d.json") == ("/etc", True)
    assert index._beneath("/elsewhere/f") == ("/elsewhere", False)


def test_host_daemon_needs_the_hosts_mount_and_user_namespaces_and_root():
    index = RuntimeIndex(use_cli=False, discover=False, paths={k: [] for k in DEFAULT_PATHS})
    index._read_host_ns()
    assert {"mnt", "user"} <= set(index._host_ns)
    assert index._host_daemon(os.getpid()) is (os.geteuid() == 0)
    index._host_ns.pop("mnt")  # unknown: not trusted
    assert index._host_daemon(os.getpid()) is False


ACME_ENGINE = '''
"""acme: a made-up runtime that writes /run/acme/ID.json (docs/architecture.md's worked example)."""
import os

RANKS = {"acme": 4}


def scan(index):
    for directory in index.paths["acme_dirs"]:
        for path in index._glob(directory.rstrip("/") + "/*.json"):
            errors = []
            fields = index._parse_once(path, lambda doc: {
                "runtime": "acme", "id": doc["id"], "name": doc["name"], "pid": int(doc["pid"]),
                "requested": dict(doc.get("sysctls") or {})}, errors, owner=os.path.basename(path)[:-5])
            if fields is not None:
                fields["requested_source"] = path
                index._add(fields["id"], "file:" + path, fields, errors)
'''


def test_a_new_runtime_is_one_engine_module_and_one_registry_row(tmp_path, monkeypatch):
    """The worked example of docs/architecture.md, run: the engine module above, one more row in
    ENGINES, and the index names the set, takes its sysctls and reports its malformed file."""
    import types

    from ansible_collections.nsguard.sysctl.plugins.module_utils import runtime_engines
    acme = types.ModuleType("runtime_acme")
    exec(compile(ACME_ENGINE, "runtime_acme.py", "exec"), acme.__dict__)
    monkeypatch.setattr(runtime_engines, "ENGINES", runtime_engines.ENGINES + (acme,))
    state = tmp_path / "root" / "run" / "acme"
    state.mkdir(parents=True)
    (tmp_path / "proc").mkdir()
    (state / "c1.json").write_text(json.dumps({"id": "c1", "name": "web", "pid": 4242,
                                               "sysctls": {"net.core.somaxconn": "1024"}}))
    (state / "c2.json").write_text("{not json")
    index = RuntimeIndex(use_cli=False, root=str(tmp_path / "root"), proc=str(tmp_path / "proc"), discover=False,
                         paths=dict({k: [] for k in DEFAULT_PATHS}, acme_dirs=["/run/acme"]))
    found = index.identify(pids=[4242], init_pid=4242)
    assert (found["identity"]["runtime"], found["identity"]["name"]) == ("acme", "web")
    assert found["requested"] == {"net.core.somaxconn": "1024"}
    assert found["requested_source"] == "/run/acme/c1.json"
    assert [e["file"] for e in index.unreported_errors()] == ["/run/acme/c2.json"]
