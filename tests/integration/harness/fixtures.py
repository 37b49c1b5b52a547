"""Session-scoped pytest fixtures: each runtime starts once per test run.

Import the ones a test module needs (``from tests.integration.harness.fixtures import ...``).
pytest makes one fixture *definition* per importing module, so every fixture here goes through
:func:`_once`: the first module that asks starts the runtime, later modules get the same
object (or the same skip), and the first definition's finalizer stops it at session end.
(Listing this module in the root conftest's ``pytest_plugins`` works as well.)

A runtime that cannot run skips its tests with the exact reason; teardown stops every
container and daemon we started, then restores the host (see :mod:`hoststate`).
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
_SHARED = {}  # fixture name -> value, or the pytest.skip exception it raised


def _timed(step, func, *args, **kwargs):
    start = time.monotonic()
    try:
        return func(*args, **kwargs)
    finally:
        TIMINGS[step] = round(time.monotonic() - start, 3)


def _once(request, name, start, stop=None):
    """``start()`` once per process; ``stop(value)`` at the end of the session."""
    if name in _SHARED:
        value = _SHARED[name]
        if isinstance(value, BaseException):
            raise value
        return value
    try:
        value = start()
    except pytest.skip.Exception as exc:
        _SHARED[name] = exc
        raise
    _SHARED[name] = value

    def finalize():
        _SHARED.pop(name, None)
        if stop is not None:
            stop(value)
    request.addfinalizer(finalize)
    return value


def _start(runtime, step, func, *args):
    try:
        return _timed(step, func, *args)
    except ct.RuntimeUnavailable as exc:
        runtime.stop()
        pytest.skip("%s cannot run here: %s" % (step.split(" ")[0], exc))


@pytest.fixture(scope="session")
def runtime_workdir(request):
    """A short private directory (unix socket paths must stay under 108 bytes)."""
    def start():
        if os.geteuid() != 0:
            pytest.skip("container runtimes need root")
        return Path(tempfile.mkdtemp(prefix="nsg-rt-", dir="/tmp"))
    return _once(request, "runtime_workdir", start, lambda path: shutil.rmtree(path, ignore_errors=True))


@pytest.fixture(scope="session")
def host_state(request, runtime_workdir):
    """The host before any runtime started; restored after all of them stopped."""
    def stop(handle):
        handle.restored = handle.state.restore(workdirs=[runtime_workdir], own_names=handle.own_names)
        if handle.restored:
            sys.stdout.write("\nhost state restored: %s\n" % "; ".join(handle.restored))
    return _once(request, "host_state",
                 lambda: SimpleNamespace(state=hoststate.HostState.snapshot(), own_names=[], restored=[]), stop)


@pytest.fixture(scope="session")
def busybox_rootfs(request, runtime_workdir):
    """``SimpleNamespace(dir=Path, tarball=Path)`` built from the host's busybox-static."""
    def start():
        if not rf.busybox_is_static():
            pytest.skip("%s is missing or not static: apt-get install busybox-static" % rf.BUSYBOX)
        directory = _timed("rootfs", rf.build_rootfs, runtime_workdir / "rootfs")
        return SimpleNamespace(dir=directory, tarball=rf.pack(directory, runtime_workdir / "rootfs.tar"))
    return _once(request, "busybox_rootfs", start)


def _runtime(request, name, runtime, *steps):
    """Start ``runtime`` (``steps``: (label, method, args...)) once; stop it at the end."""
    def start():
        for label, method, *args in steps:
            _start(runtime, "%s %s" % (name, label), method, *args)
        return runtime
    return _once(request, name, start, lambda value: _timed("%s stop" % name, value.stop))


@pytest.fixture(scope="session")
def docker_engine(request, runtime_workdir, host_state, busybox_rootfs):
    engine = ct.DockerEngine(runtime_workdir / "docker")
    return _runtime(request, "docker", engine, ("start", engine.start),
                    ("import", engine.import_image, busybox_rootfs.tarball))


@pytest.fixture(scope="session")
def docker_container(request, docker_engine):
    return _once(request, "docker_container",
                 lambda: _start(docker_engine, "docker run", docker_engine.run, TAG + "-docker"))


@pytest.fixture(scope="session")
def podman_runtime(request, runtime_workdir, host_state, busybox_rootfs):
    podman = ct.Podman(runtime_workdir / "podman")
    return _runtime(request, "podman", podman, ("start", podman.start),
                    ("import", podman.import_image, busybox_rootfs.tarball))


@pytest.fixture(scope="session")
def podman_container(request, podman_runtime):
    return _once(request, "podman_container",
                 lambda: _start(podman_runtime, "podman run", podman_runtime.run, TAG + "-podman"))


@pytest.fixture(scope="session")
def runc_runtime(request, runtime_workdir, host_state):
    runc = ct.Runc(runtime_workdir / "runc")
    return _runtime(request, "runc", runc, ("start", runc.start))


@pytest.fixture(scope="session")
def runc_container(request, runc_runtime, busybox_rootfs, host_state):
    name = TAG + "-runc"

    def start():
        host_state.own_names.append(name)  # runc's cgroup is /<id> in every hierarchy
        return _start(runc_runtime, "runc run", runc_runtime.run, name, busybox_rootfs.dir)
    return _once(request, "runc_container", start)


@pytest.fixture(scope="session")
def lxc_runtime(request, runtime_workdir, host_state):
    lxc = ct.Lxc(runtime_workdir / "lxc")
    return _runtime(request, "lxc", lxc, ("start", lxc.start))


@pytest.fixture(scope="session")
def lxc_container(request, lxc_runtime, host_state):
    name = TAG + "-lxc"

    def start():
        host_state.own_names.append(name)
        return _start(lxc_runtime, "lxc run", lxc_runtime.run, name)
    return _once(request, "lxc_container", start)


@pytest.fixture(scope="session")
def all_containers(docker_container, podman_container, runc_container, lxc_container):
    """The four containers, keyed by runtime."""
    return {c.runtime: c for c in (docker_container, podman_container, runc_container, lxc_container)}


@pytest.fixture(scope="session")
def k8s_pod(request, docker_engine, busybox_rootfs, host_state):
    """``SimpleNamespace(sandbox, app, pod_name, pod_namespace)`` on dockerd's containerd."""
    pod = ct.ContainerdPod(docker_engine, busybox_rootfs.dir, TAG)

    def start():
        host_state.own_names.append("kubepods")
        sandbox, app = _start(pod, "k8s-pod run", pod.start)
        return SimpleNamespace(sandbox=sandbox, app=app, pod_name=pod.pod_name, pod_namespace=pod.pod_namespace,
                               stop=pod.stop)
    return _once(request, "k8s_pod", start, lambda value: _timed("k8s-pod stop", value.stop))
