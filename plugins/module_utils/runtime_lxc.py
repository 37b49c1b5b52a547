# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""LXC: each container's ``config`` under the lxc paths (``lxc.conf``'s ``lxc.lxcpath`` and
the monitor's command line add moved ones), and the ``[lxc monitor]`` process above a
container's init. ``lxc-info`` is asked by ``runtime_cli`` as a last resort.

An engine of the runtime index (``runtime_engines``). Target side: standard library only,
Python >= 3.8.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.nsguard.sysctl.plugins.module_utils import runtimes_parse as rp

RANKS = {"lxc": 4}
DAEMONS = ("lxc*",)  # lxc-start, lxc-monitord and the other lxc-* processes
PARENTS = ("lxc",)


def discover(index, pid, comm):
    # type: (object, int, str) -> None
    parsed = rp.parse_lxc_monitor_cmdline(index._argv(pid))
    if parsed:
        index._extend("lxc_paths", parsed["lxcpath"])
        index._by_parent[pid] = ("lxc", parsed, None)


def discover_config(index):
    # type: (object) -> None
    """``lxc.lxcpath`` from lxc.conf."""
    for path in index.paths["lxc_conf"]:
        text = index._read(path) or ""
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() == "lxc.lxcpath" and value.strip():
                index._extend("lxc_paths", value.strip())


def scan(index):
    # type: (object) -> None
    for lxcpath in index.paths["lxc_paths"]:
        for config_path in index._glob(lxcpath.rstrip("/") + "/*/config"):
            if config_path in index._seen_files:
                continue
            index._seen_files.add(config_path)
            name = os.path.basename(os.path.dirname(config_path))
            errors = []
            text = index._read(config_path, errors)
            if text is None:
                index._record("lxc:" + name)["errors"].extend(errors)
                continue
            fields = rp.parse_lxc_config(text)
            fields.update({"id": name, "name": name, "lxcpath": lxcpath, "requested_source": config_path})
            index._add("lxc:" + name, "file:" + config_path, fields, errors)


def parent_key(index, kind, opts, bundle):
    # type: (object, str, dict, object) -> object
    key = "lxc:" + opts["name"]
    if key not in index._records:
        index._add(key, "cmdline:lxc-monitor", {"runtime": "lxc", "id": opts["name"], "name": opts["name"]})
    return key
