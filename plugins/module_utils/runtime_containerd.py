# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""containerd (and Kubernetes pods through it): the task bundles
``io.containerd.runtime.v2.task/NS/ID``, the state directory from containerd's config, and
``containerd-shim`` processes above a container's init (a shim runs in its task's bundle).

An engine of the runtime index (``runtime_engines``). Target side: standard library only,
Python >= 3.8.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.nsguard.sysctl.plugins.module_utils import runtimes_parse as rp
from ansible_collections.nsguard.sysctl.plugins.module_utils.runtime_oci import scan_bundle

RANKS = {"containerd": 3}
DAEMONS = ("containerd", "containerd-shim*")
PARENTS = ("shim",)


def discover(index, pid, comm):
    # type: (object, int, str) -> None
    if comm == "containerd":
        argv = index._argv(pid)
        config = rp.cli_options(argv[1:], {"--config": "config", "-c": "config"}).get("config")
        text = index._read(config or "/etc/containerd/config.toml", follow=True)
        if text:
            state = rp.parse_containerd_toml_paths(text).get("state")
            if state:
                index._extend("containerd_task_dirs", state + "/io.containerd.runtime.v2.task")
        return
    bundle = index._cwd(pid)
    if bundle:
        # shim v2 runs in the task's bundle: .../io.containerd.runtime.v2.task/NS/ID
        index._extend("containerd_task_dirs", os.path.dirname(os.path.dirname(bundle)))
        index._by_parent[pid] = ("shim", rp.parse_shim_cmdline(index._argv(pid)), bundle)


def scan(index):
    # type: (object) -> None
    for task_dir in index.paths["containerd_task_dirs"]:
        for bundle in index._glob(task_dir.rstrip("/") + "/*/*"):
            scan_bundle(index, bundle, namespace=os.path.basename(os.path.dirname(bundle)))


def parent_key(index, kind, opts, bundle):
    # type: (object, str, dict, object) -> object
    """The container a shim serves: its bundle (read if the scan missed it) or its ``-id``."""
    if bundle:
        scan_bundle(index, bundle, namespace=opts.get("namespace"))
    cid = opts.get("id") or (os.path.basename(bundle) if bundle else None)
    return index._by_id.get(cid) if cid else None
