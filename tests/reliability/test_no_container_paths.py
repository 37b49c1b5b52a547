"""Proof by strace: the gather never opens a path under a container's root, never executes from it.

A real namespace set runs chrooted into its own rootfs (its own mount, net, ipc, uts and pid
namespaces), with a planted ``/proc``-looking tree and a fake ``sysctl`` binary inside it. The whole
gather (probe and runtime CLIs on) runs under ``strace -f``; every ``open``/``openat``/``execve``
of the module and of all its forked readers is checked.
"""
from __future__ import annotations

import os
import shutil
import sys
import textwrap

import pytest

from tests.integration.nsfixtures import spawn_set
from tests.reliability.strace_paths import STRACE, run_traced

pytestmark = pytest.mark.root

BUSYBOX = shutil.which("busybox")

DRIVER = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, sys.argv[1])
    from ansible_collections.nsguard.sysctl.plugins.modules import sysctl_facts
    from ansible_collections.nsguard.sysctl.plugins.module_utils import persisted
    params = dict(containers=True, probe=True, view="full", include=[], exclude=[], timeout=10.0,
                  gather_timeout=60.0, parallel=0, max_pids_per_set=20, runtime_cli=True,
                  sysctl_d_dirs=list(persisted.SYSCTL_D_DIRS), sysctl_conf=persisted.SYSCTL_CONF)
    facts = sysctl_facts.gather(params)
    print(json.dumps([s["representative_pid"] for s in facts["namespace_sets"]]))
""")


@pytest.mark.skipif(not STRACE or not BUSYBOX, reason="needs strace and busybox (scripts/install-test-host.sh)")
def test_gather_opens_and_executes_nothing_of_a_container(tmp_path):
    rootfs = tmp_path / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    # Bait: a container-side /proc/sys and a fake sysctl binary the module must never touch.
    (rootfs / "proc" / "sys" / "net" / "core").mkdir(parents=True)
    (rootfs / "proc" / "sys" / "net" / "core" / "somaxconn").write_text("666\n")
    (rootfs / "sbin").mkdir()
    (rootfs / "sbin" / "sysctl").write_text("#!/bin/busybox sh\necho owned > /tmp/owned\n")
    (rootfs / "sbin" / "sysctl").chmod(0o755)
    made = spawn_set(f"echo 2468 > /proc/sys/net/core/somaxconn\necho ready $$\n"
                     f"exec chroot {rootfs} /bin/busybox sleep 600\n",
                     flags=("-m", "-n", "-i", "-u", "-p", "-f"))
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    try:
        proc, trace = run_traced([sys.executable, str(driver), str(_collections_dir())], tmp_path / "trace")
        inner = made.inner_pid
        # The chrooted sleep replaced the shell: its root is the rootfs.
        assert os.readlink(f"/proc/{inner}/root") == str(rootfs)
    finally:
        made.kill()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert inner in set(__import__("json").loads(proc.stdout.strip().splitlines()[-1]))

    assert any(p.startswith("/proc/sys/net/") for p in trace.opened), "the trace shows no sysctl read: not what this test thinks"
    assert trace.reached, "the trace shows no opened descriptor: strace -y output changed"
    assert trace.touching(str(rootfs)) == [], "opened or executed under the container's rootfs or a process's root"
    # Only host binaries: the interpreter itself and runtime CLIs from the host's own directories.
    assert trace.foreign_executables() == []
    assert not (rootfs / "tmp" / "owned").exists()


def _collections_dir():
    from tests.conftest import DEV_COLLECTIONS
    return DEV_COLLECTIONS
