"""Symbolic links, FIFOs, devices and huge files planted where the module reads host metadata
(issue 7, part 3), under ``strace -f -y``.

Every runtime search path of ``runtime_paths.DEFAULT_PATHS`` (Docker data root, containerd task
dirs, runc roots, containers/storage root and runroot, LXC paths, machined's directory, Docker's
daemon.json, lxc.conf) and the ``sysctl_d_dirs`` option point at test-made directories holding:
links into a running container's rootfs and through ``/proc/PID/root``, directory links, links to
``/dev/zero``, FIFOs (plain and linked), a 9 MiB sparse file, link loops, and one good file per
runtime. Two impostor daemons say where "state" is: a ``conmon`` run by an unprivileged user in
the host's namespaces, and a root ``dockerd`` in a mount namespace of its own; both point into
the container's rootfs, where bait files wait.

The whole gather runs under strace with a timeout: nothing under the rootfs or any
``/proc/PID/root`` is opened (asked for or reached through a link), no FIFO or device blocks it
or fills its memory, each planted path is an error that names it, and the good files are read.
A negative control (a plain ``open`` of one of the links) is caught by the same trace check.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap

import pytest

from ansible_collections.nsguard.sysctl.plugins.module_utils import runtimes_parse
from tests.integration.nsfixtures import spawn_set
from tests.reliability.strace_paths import STRACE, run_traced

pytestmark = pytest.mark.root

BUSYBOX = shutil.which("busybox")
HUGE = 9 * 1024 * 1024  # above the runtime reader's 8 MiB and sysctl.d's 1 MiB caps

DRIVER = textwrap.dedent("""
    import json, resource, sys, time
    sys.path.insert(0, sys.argv[1])
    conf = json.loads(open(sys.argv[2]).read())
    from ansible_collections.nsguard.sysctl.plugins.modules import sysctl_facts
    from ansible_collections.nsguard.sysctl.plugins.module_utils import persisted, runtime_paths, runtimes
    runtime_paths.DEFAULT_PATHS.clear()
    runtime_paths.DEFAULT_PATHS.update(conf["paths"])
    started = time.monotonic()
    params = dict(containers=True, probe=False, view="diff", include=[], exclude=[], timeout=10.0,
                  gather_timeout=60.0, parallel=0, max_pids_per_set=20, runtime_cli=False,
                  sysctl_d_dirs=conf["sysctl_d"], sysctl_conf="")
    facts = sysctl_facts.gather(params)
    # The index alone, to see every record and error (the gather keeps only those of matched sets).
    index = runtimes.RuntimeIndex(use_cli=False)
    index.scan()
    errors = list(index.errors)
    for rec in index._records.values():
        errors.extend(rec["errors"])
    print(json.dumps({
        "seconds": time.monotonic() - started,
        "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "sets": [s["representative_pid"] for s in facts["namespace_sets"]],
        "host_keys": len(facts["host"]["keys"]),
        "gather_errors": facts["errors"],
        "persisted": facts["host"]["persisted"],
        "records": {k: index._merged(k) for k in index._records},
        "index_errors": errors,
    }))
""")


def _link(path, target):
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(str(target), str(path))
    return path


def _fifo(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(str(path))
    return path


def _huge(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.truncate(HUGE)
    return path


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _bait(rootfs):
    """Files inside the container that look like runtime metadata: reading one is the failure."""
    bait = rootfs / "bait"
    docker = {"ID": "bait", "Name": "/bait", "Config": {"Image": "bait"}, "State": {"Pid": 1}}
    _write(bait / "config.v2.json", json.dumps(docker))
    for sub in ("", "bundle/", "runc/"):
        _write(bait / (sub + "config.json"), json.dumps({"annotations": {"bait": "1"}, "linux": {}}))
    _write(bait / "runc" / "state.json", json.dumps({"id": "bait", "init_process_pid": 1}))
    _write(bait / "bundle" / "init.pid", "1")
    _write(bait / "containers.json", json.dumps([{"id": "bait", "names": ["bait"]}]))
    _write(bait / "config", "lxc.uts.name = bait\n")
    _write(bait / "lxc" / "config", "lxc.uts.name = bait\n")
    _write(bait / "machine", "NAME=bait\nSERVICE=systemd-nspawn\nLEADER=1\n")
    _write(bait / "x.conf", "vm.bait = 1\n")
    _write(bait / "docker" / "containers" / "bait" / "config.v2.json", json.dumps(docker))
    _write(bait / "storage" / "overlay-containers" / "containers.json", "[]")
    return bait


def _plant(meta, rootfs, pid):
    """The planted tree; returns (paths for the index, sysctl.d dirs, {planted path: what it is})."""
    bait = rootfs / "bait"
    via_proc = "/proc/%d/root/bait" % pid
    expect = {}

    def bad(path, what):
        expect[str(path)] = what
        return path

    docker = meta / "docker" / "containers"
    bad(_link(docker / "c-dirlink", bait), "a directory link into the rootfs")
    bad(_link(docker / "c-proc" / "config.v2.json", via_proc + "/config.v2.json"), "a link through /proc/PID/root")
    bad(_fifo(docker / "c-fifo" / "config.v2.json"), "a FIFO")
    bad(_link(docker / "c-zero" / "config.v2.json", "/dev/zero"), "a link to /dev/zero")
    bad(_huge(docker / "c-huge" / "config.v2.json"), "a 9 MiB file")
    _link(docker / "c-loop" / "x", docker / "c-loop" / "config.v2.json")
    bad(_link(docker / "c-loop" / "config.v2.json", docker / "c-loop" / "x"), "a link loop")
    bad(_link(docker / "c-fifolink" / "config.v2.json", docker / "c-fifo" / "config.v2.json"), "a link to a FIFO")
    good = {"ID": "c-good", "Name": "/good", "Config": {"Image": "img:1"}, "State": {"Pid": 0}}
    _write(docker / "c-good" / "config.v2.json", json.dumps(good))
    _write(docker / "c-hostcfg" / "config.v2.json", json.dumps(dict(good, ID="c-hostcfg", Name="/hostcfg")))
    bad(_fifo(docker / "c-hostcfg" / "hostconfig.json"), "a FIFO next to a good file")

    task = meta / "task"
    bad(_link(task / "ns-link", bait), "a namespace directory link")
    bad(_link(task / "k8s" / "t-proc" / "config.json", via_proc + "/config.json"), "a link through /proc/PID/root")
    bad(_fifo(task / "k8s" / "t-fifo" / "config.json"), "a FIFO")
    bad(_link(task / "k8s" / "t-dirlink", bait / "bundle"), "a bundle directory link")
    _write(task / "k8s" / "t-good" / "config.json", json.dumps({"annotations": {}, "linux": {}}))
    bad(_link(task / "k8s" / "t-good" / "init.pid", "/dev/zero"), "init.pid linked to /dev/zero")

    runc = meta / "runc"
    bad(_link(runc / "r-proc" / "state.json", via_proc + "/runc/state.json"), "a link through /proc/PID/root")
    bad(_link(runc / "r-dir", bait / "runc"), "a directory link")

    storage = meta / "storage" / "overlay-containers"
    _write(storage / "containers.json", "[]")
    bad(_link(meta / "storage" / "vfs-containers" / "containers.json", bait / "containers.json"), "a link into the rootfs")
    bad(_link(storage / "s1" / "userdata", bait / "bundle"), "a userdata directory link")
    runroot = meta / "runroot" / "overlay-containers" / "s2" / "userdata"
    bad(_fifo(runroot / "pidfile"), "a FIFO pidfile")
    bad(_link(runroot / "config.json", "/dev/zero"), "config.json linked to /dev/zero")

    lxc = meta / "lxc"
    bad(_link(lxc / "n-proc" / "config", via_proc + "/config"), "a link through /proc/PID/root")
    bad(_link(lxc / "n-dir", bait / "lxc"), "a container directory link")
    bad(_link(lxc / "n-loop" / "config", lxc / "n-loop" / "config"), "a link to itself")
    _write(lxc / "n-good" / "config", "lxc.uts.name = n-good\nlxc.sysctl.net.core.somaxconn = 1024\n")

    machines = meta / "machines"
    bad(_link(machines / "m-proc", via_proc + "/machine"), "a link through /proc/PID/root")
    _link(machines / "unit:m-proc.scope", "m-proc")  # machined's own kind of link: skipped silently

    daemon_json = bad(_fifo(meta / "etc" / "daemon.json"), "a FIFO as daemon.json")
    lxc_conf = bad(_link(meta / "etc" / "lxc.conf", "/dev/zero"), "lxc.conf linked to /dev/zero")

    sysctl_d = meta / "sysctl.d"
    bad(_link(sysctl_d / "10-proc.conf", via_proc + "/x.conf"), "a link through /proc/PID/root")
    bad(_link(sysctl_d / "20-rootfs.conf", bait / "x.conf"), "a link into the rootfs")
    bad(_link(sysctl_d / "30-zero.conf", "/dev/zero"), "a link to /dev/zero")
    bad(_fifo(sysctl_d / "40-fifo.conf"), "a FIFO")
    bad(_link(sysctl_d / "50-loop.conf", sysctl_d / "50-loop.conf"), "a link loop")
    bad(_huge(sysctl_d / "60-huge.conf"), "a 9 MiB file")
    _write(sysctl_d / "70-good.conf", "vm.swappiness = 10\n")
    _link(sysctl_d / "80-masked.conf", "/dev/null")  # systemd's masking: silent

    paths = {
        "docker_roots": [str(meta / "docker")], "docker_exec_roots": [str(meta / "dexec")],
        "docker_sockets": [str(meta / "docker.sock")], "docker_daemon_json": [str(daemon_json)],
        "containerd_task_dirs": [str(task)], "runc_roots": [str(runc)],
        "storage_roots": [str(meta / "storage")], "storage_runroots": [str(meta / "runroot")],
        "lxc_paths": [str(lxc)], "lxc_conf": [str(lxc_conf)], "machines_dirs": [str(machines)],
        "netns_dirs": ["/run/netns", "/var/run/netns"],
    }
    return paths, [str(sysctl_d)], expect


def _impostors(rootfs):
    """A ``conmon`` of an unprivileged user (host namespaces) and a root ``dockerd`` in its own
    mount namespace, each saying runtime state lives in the container's rootfs."""
    fake = tempfile.mkdtemp(prefix="nsg-fake-")
    os.chmod(fake, 0o755)
    loop = "while :; do sleep 1; done"
    conmon_argv = ["conmon", "-c", "bait", "-b", str(rootfs / "bait" / "bundle"), "--exit-command", "/usr/bin/podman",
                   "--exit-command-arg", "--root", "--exit-command-arg", str(rootfs / "bait" / "storage")]
    dockerd_argv = ["dockerd", "--data-root", str(rootfs / "bait" / "docker"), "--exec-root", str(rootfs / "bait")]
    # Without the check on who runs them, discovery would take these paths.
    assert runtimes_parse.parse_conmon_cmdline(conmon_argv)["bundle"] == str(rootfs / "bait" / "bundle")
    assert runtimes_parse.parse_dockerd_cmdline(dockerd_argv)["data_root"] == str(rootfs / "bait" / "docker")
    shutil.copy("/bin/dash", os.path.join(fake, "conmon"))
    shutil.copy("/bin/dash", os.path.join(fake, "dockerd"))
    procs = [
        subprocess.Popen(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                          os.path.join(fake, "conmon"), "-c", loop, *conmon_argv],
                         start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen(["unshare", "-m", "--kill-child", os.path.join(fake, "dockerd"), "-c", loop, *dockerd_argv],
                         start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    return fake, procs


def _comms():
    out = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/comm" % name) as handle:
                    out.add(handle.read().strip())
            except OSError:
                continue
    return out


@pytest.mark.skipif(not STRACE or not BUSYBOX, reason="needs strace and busybox (scripts/install-test-host.sh)")
def test_planted_links_fifos_devices_and_impostors(tmp_path):
    rootfs = tmp_path / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    _bait(rootfs)
    made = spawn_set(f"echo ready $$\nexec chroot {rootfs} /bin/busybox sleep 600\n",
                     flags=("-m", "-n", "-i", "-u", "-p", "-f"))
    fake, procs = None, []
    try:
        pid = made.inner_pid
        paths, sysctl_d, expect = _plant(tmp_path / "meta", rootfs, pid)
        conf = tmp_path / "conf.json"
        conf.write_text(json.dumps({"paths": paths, "sysctl_d": sysctl_d}))
        driver = tmp_path / "driver.py"
        driver.write_text(DRIVER)
        fake, procs = _impostors(rootfs)
        deadline = 50
        while not {"conmon", "dockerd"} <= _comms() and deadline:
            deadline -= 1
            __import__("time").sleep(0.1)
        assert {"conmon", "dockerd"} <= _comms(), "the impostor daemons did not start"
        proc, trace = run_traced([sys.executable, str(driver), str(_collections_dir()), str(conf)],
                                 tmp_path / "trace", timeout=120)

        # Negative control: the same trace check catches a plain open() through one of the links.
        control, control_trace = run_traced(
            [sys.executable, "-c", "import sys; open(sys.argv[1]).read(1)",
             str(tmp_path / "meta" / "runc" / "r-proc" / "state.json")], tmp_path / "control")
    finally:
        for child in procs:
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            child.wait(10)
        made.kill()
        if fake:
            shutil.rmtree(fake, ignore_errors=True)

    assert control.returncode == 0 and control_trace.touching(str(rootfs)), "the trace check misses a followed link"

    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert trace.opened and trace.reached
    assert trace.touching(str(rootfs)) == [], "opened under the container's rootfs or a /proc/PID/root"
    assert trace.foreign_executables() == []
    # Nothing blocked (the FIFOs), nothing filled memory (/dev/zero, 9 MiB files: never read).
    assert out["seconds"] < 60
    assert out["maxrss_kb"] < 200 * 1024, out["maxrss_kb"]

    # The rest completed: the container's set, the host's keys, the good files.
    assert pid in out["sets"] and out["host_keys"] > 500
    names = {(r.get("runtime"), r.get("name")) for r in out["records"].values()}
    assert ("docker", "good") in names and ("docker", "hostcfg") in names and ("lxc", "n-good") in names
    assert out["records"]["lxc:n-good"]["requested"] == {"net.core.somaxconn": "1024"}
    assert "t-good" in out["records"]
    assert not any("bait" in json.dumps(r) for r in out["records"].values()), "a bait file was read"
    persisted = out["persisted"]
    assert persisted["keys"].get("vm.swappiness", {}).get("value") == "10"
    assert "vm.bait" not in persisted["keys"]

    # Each planted path is an error that names it (runtime files in the index, sysctl.d in persisted).
    messages = [e["message"] for e in out["index_errors"] + persisted["errors"]]
    missing = {path: what for path, what in expect.items() if not any(path in m for m in messages)}
    assert missing == {}, "planted paths without an error naming them: %s\n%s" % (missing, "\n".join(messages))
    # The machined unit link and the /dev/null mask are not errors.
    assert not any("unit:m-proc.scope" in m or "80-masked.conf" in m for m in messages)
    # What the gather itself reports: the unmatched runtime files' errors are in its top-level errors.
    gathered = [e.get("message", "") for e in out["gather_errors"]]
    assert any(str(tmp_path / "meta" / "docker" / "containers" / "c-fifo") in m for m in gathered)


def _collections_dir():
    from tests.conftest import DEV_COLLECTIONS
    return DEV_COLLECTIONS


def test_a_linked_docker_socket_is_not_asked(tmp_path):
    """A symbolic link where Docker's API socket should be (to a socket a container serves):
    the index does not connect, and says why, naming the path."""
    import socket

    from ansible_collections.nsguard.sysctl.plugins.module_utils import runtime_paths, runtimes
    served = tmp_path / "container.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(served))
    server.listen(1)
    server.settimeout(0.5)
    link = _link(tmp_path / "run" / "docker.sock", served)
    empty = {k: [] for k in runtime_paths.DEFAULT_PATHS}
    index = runtimes.RuntimeIndex(use_cli=True, timeout=1.0, paths=dict(empty, docker_sockets=[str(link)]),
                                  discover=False)
    index._ask_cli("docker", "0" * 64)  # what identify() does for a docker cgroup without files
    try:
        with pytest.raises(socket.timeout):
            server.accept()
    finally:
        server.close()
    assert [e["message"] for e in index.errors] == ["%s: not a socket (a symbolic link or a file); not asked" % link]


PERSISTED_DRIVER = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, sys.argv[1])
    conf = json.loads(open(sys.argv[2]).read())
    from ansible_collections.nsguard.sysctl.plugins.module_utils import persisted
    print(json.dumps(persisted.read_persisted(tuple(conf["dirs"]), None, (), runtime_paths=conf["runtime_paths"])))
""")


def _persisted_traced(tmp_path, name, sysctl_d, runtime_paths, setup):
    """The persisted reader alone under strace, in a private mount namespace where ``setup``
    (shell, not traced) made what it needs; returns (the facts, the trace)."""
    from tests.reliability.strace_paths import SYSCALLS, parse
    conf = tmp_path / (name + ".json")
    conf.write_text(json.dumps({"dirs": [str(sysctl_d)], "runtime_paths": runtime_paths}))
    driver = tmp_path / "persisted_driver.py"
    driver.write_text(PERSISTED_DRIVER)
    out = tmp_path / (name + ".trace")
    script = "set -e\n%s\nexec %s -f -y -qq -e %s -o %s %s %s %s %s\n" % (
        setup, STRACE, SYSCALLS, out, sys.executable, driver, _collections_dir(), conf)
    proc = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), parse(out.read_text(errors="replace"))


@pytest.mark.skipif(not STRACE, reason="needs strace (scripts/install-test-host.sh)")
def test_sysctl_d_links_into_runtime_directories_are_refused(tmp_path):
    """A container with a mount namespace of its own does not show its root in /proc/PID/root:
    its files lie under the runtime's directories. A sysctl.d link into Docker's default data
    root (a tmpfs over /var/lib in a private mount namespace stands in for it) or into a
    directory registered as a runtime root is refused, naming the file; nothing there is opened."""
    registered = tmp_path / "runtime"
    _write(registered / "c1" / "rootfs" / "x.conf", "vm.bait_registered = 1\n")
    merged = "/var/lib/docker/overlay2/abc/merged"
    sysctl_d = tmp_path / "sysctl.d"
    _link(sysctl_d / "10-docker.conf", merged + "/etc/x.conf")
    _link(sysctl_d / "20-registered.conf", registered / "c1" / "rootfs" / "x.conf")
    _write(sysctl_d / "30-good.conf", "vm.swappiness = 10\n")
    setup = ("mount -t tmpfs nsg-varlib /var/lib\nmkdir -p %s/etc\n"
             "printf 'vm.bait_docker = 1\\n' > %s/etc/x.conf" % (merged, merged))

    # Control: without the registration the test-made root is an ordinary directory, and the
    # same trace check sees the link followed.
    control, control_trace = _persisted_traced(tmp_path, "control", sysctl_d, None, setup)
    assert control["keys"]["vm.bait_registered"]["value"] == "1"
    assert control_trace.touching(str(registered)), "the trace check misses a followed link"

    got, trace = _persisted_traced(tmp_path, "refused", sysctl_d, {"storage_roots": [str(registered)]}, setup)
    assert trace.opened and trace.touching(str(registered), "/var/lib/docker") == []
    assert got["keys"]["vm.swappiness"]["value"] == "10"
    assert not any(key.startswith("vm.bait") for key in got["keys"])
    assert got["files"] == [str(sysctl_d / "30-good.conf")]
    messages = sorted(e["message"] for e in got["errors"])
    assert messages == [
        "%s: leads under /var/lib/docker (%s -> %s/etc/x.conf); not followed; skipped" % (
            sysctl_d / "10-docker.conf", sysctl_d / "10-docker.conf", merged),
        "%s: leads under %s (%s -> %s); not followed; skipped" % (
            sysctl_d / "20-registered.conf", registered, sysctl_d / "20-registered.conf",
            registered / "c1" / "rootfs" / "x.conf"),
    ]
