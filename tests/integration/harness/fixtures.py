"""Session-scoped pytest fixtures: each runtime starts once per test run.

Import the ones a test module needs (``from tests.integration.harness.fixtures import ...``).
A runtime that cannot run skips its tests with the exact reason; teardown stops every
container and daemon we started, then restores the host (see :mod:`harness.hoststate`).
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.integration.harness import containers as ct
from tests.integration.harness import hoststate
from tests.integration.harness import rootfs as rf

TAG = "nsg-it-%d" % os.getpid()
TIMINGS = {}  # step -> seconds, reported by the tests that care


def _timed(step, func, *args, **kwargs):
    start = time.monotonic()
    try:
        return func(*args, **kwargs)
    finally:
        TIMINGS[step] = round(time.monotonic() - start, 3)


@pytest.fixture(scope="session")
def runtime_workdir():
    """A short private directory (unix socket paths must stay under 108 bytes)."""
    if os.geteuid() != 0:
        pytest.skip("container runtimes need root")
    path = Path(tempfile.mkdtemp(prefix="nsg-rt-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def host_state(runtime_workdir):
    """The host before any runtime started; restored after all of them stopped."""
    handle = SimpleNamespace(state=hoststate.HostState.snapshot(), own_names=[], restored=[])
    yield handle
    handle.restored = handle.state.restore(workdirs=[runtime_workdir], own_names=handle.own_names)
    if handle.restored:
        sys.stdout.write("\nhost state restored: %s\n" % "; ".join(handle.restored))


@pytest.fixture(scope="session")
def busybox_rootfs(runtime_workdir):
    """``SimpleNamespace(dir=Path, tarball=Path)`` built from the host's busybox-static."""
    if not rf.busybox_is_static():
        pytest.skip("%s is missing or not static: apt-get install busybox-static" % rf.BUSYBOX)
    directory = _timed("rootfs", rf.build_rootfs, runtime_workdir / "rootfs")
    tarball = rf.pack(directory, runtime_workdir / "rootfs.tar")
    return SimpleNamespace(dir=directory, tarball=tarball)


def _start(runtime, step, func, *args):
    try:
        return _timed(step, func, *args)
    except ct.RuntimeUnavailable as exc:
        runtime.stop()
        pytest.skip("%s cannot run here: %s" % (step.split(" ")[0], exc))


@pytest.fixture(scope="session")
def docker_engine(runtime_workdir, host_state, busybox_rootfs):
    engine = ct.DockerEngine(runtime_workdir / "docker")
    _start(engine, "docker start", engine.start)
    _start(engine, "docker import", engine.import_image, busybox_rootfs.tarball)
    yield engine
    _timed("docker stop", engine.stop)


@pytest.fixture(scope="session")
def docker_container(docker_engine):
    return _start(docker_engine, "docker run", docker_engine.run, TAG + "-docker")


@pytest.fixture(scope="session")
def podman_runtime(runtime_workdir, host_state, busybox_rootfs):
    podman = ct.Podman(runtime_workdir / "podman")
    _start(podman, "podman start", podman.start)
    _start(podman, "podman import", podman.import_image, busybox_rootfs.tarball)
    yield podman
    _timed("podman stop", podman.stop)


@pytest.fixture(scope="session")
def podman_container(podman_runtime):
    return _start(podman_runtime, "podman run", podman_runtime.run, TAG + "-podman")


@pytest.fixture(scope="session")
def runc_runtime(runtime_workdir, host_state):
    runc = ct.Runc(runtime_workdir / "runc")
    _start(runc, "runc start", runc.start)
    yield runc
    _timed("runc stop", runc.stop)


@pytest.fixture(scope="session")
def runc_container(runc_runtime, busybox_rootfs, host_state):
    name = TAG + "-runc"
    host_state.own_names.append(name)  # runc's cgroup is /<id> in every hierarchy
    return _start(runc_runtime, "runc run", runc_runtime.run, name, busybox_rootfs.dir)


@pytest.fixture(scope="session")
def lxc_runtime(runtime_workdir, host_state):
    lxc = ct.Lxc(runtime_workdir / "lxc")
    _start(lxc, "lxc start", lxc.start)
    yield lxc
    _timed("lxc stop", lxc.stop)


@pytest.fixture(scope="session")
def lxc_container(lxc_runtime, host_state):
    name = TAG + "-lxc"
    host_state.own_names.append(name)
    return _start(lxc_runtime, "lxc run", lxc_runtime.run, name)


@pytest.fixture(scope="session")
def all_containers(docker_container, podman_container, runc_container, lxc_container):
    """The four containers, keyed by runtime."""
    return {c.runtime: c for c in (docker_container, podman_container, runc_container, lxc_container)}
