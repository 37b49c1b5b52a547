# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Docker: ``containers/*/{config.v2.json,hostconfig.json}`` under the data roots, dockerd's
command line and ``daemon.json`` for moved roots and sockets, the sandbox network namespaces.
Its API socket is asked by ``runtime_cli`` where the files leave a gap.

An engine of the runtime index (``runtime_engines``). Target side: standard library only,
Python >= 3.8.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.nsguard.sysctl.plugins.module_utils import runtimes_parse as rp

RANKS = {"docker": 4}
DAEMONS = ("dockerd",)


def _extend_from(index, opts):
    # type: (object, dict) -> None
    index._extend("docker_roots", opts.get("data_root"))
    index._extend("docker_exec_roots", opts.get("exec_root"))
    for sock in opts.get("sockets", []):
        index._extend("docker_sockets", sock)


def discover(index, pid, comm):
    # type: (object, int, str) -> None
    """dockerd's ``--data-root``, ``--exec-root``, ``-H unix://`` and ``--config-file``."""
    opts = rp.parse_dockerd_cmdline(index._argv(pid))
    _extend_from(index, opts)
    if opts.get("config_file"):
        index._extend("docker_daemon_json", opts["config_file"])


def discover_config(index):
    # type: (object) -> None
    """The same settings from ``daemon.json``."""
    for path in index.paths["docker_daemon_json"]:
        doc = index._read_json(path)
        _extend_from(index, rp.parse_docker_daemon_json(doc) if doc is not None else {})


def scan(index):
    # type: (object) -> None
    for exec_root in index.paths["docker_exec_roots"]:
        # dockerd's private containerd and runc state live under its exec-root (scanned by
        # the containerd and OCI engines, which come after this one).
        index._extend("containerd_task_dirs", exec_root + "/containerd/daemon/io.containerd.runtime.v2.task")
        index._extend("runc_roots", exec_root + "/runtime-runc/*")
    for data_root in index.paths["docker_roots"]:
        for cdir in index._glob(data_root.rstrip("/") + "/containers/*"):
            config_path = cdir + "/config.v2.json"
            errors = []
            hostconfig = index._read_json(cdir + "/hostconfig.json", errors)
            fields = index._parse_once(config_path, lambda doc, hc=hostconfig: rp.parse_docker_container(doc, hc or {}),
                                       errors, owner=os.path.basename(cdir))
            if fields is None:
                continue
            fields["requested_source"] = cdir + "/hostconfig.json" if fields.get("requested") else None
            index._add(fields["id"], "file:" + config_path, fields, errors)
            if fields.get("sandbox_key"):
                _sandbox_key(index, fields["sandbox_key"], fields["id"])


def _sandbox_key(index, path, key):
    # type: (object, str, str) -> None
    """Docker's bind mount of the container's network namespace, by inode."""
    try:
        index._sandbox_netns[os.stat(index._host(path)).st_ino] = key
    except OSError:
        return
