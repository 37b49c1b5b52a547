# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""systemd-nspawn: machined's registrations under ``/run/systemd/machines`` and the
``systemd-nspawn`` process above a machine's init (its command line names the machine and
whether it shares the host's network).

An engine of the runtime index (``runtime_engines``). Target side: standard library only,
Python >= 3.8.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.nsguard.sysctl.plugins.module_utils import runtimes_parse as rp

RANKS = {"systemd-nspawn": 4}
DAEMONS = ("systemd-nspawn",)
PARENTS = ("nspawn",)


def discover(index, pid, comm):
    # type: (object, int, str) -> None
    index._by_parent[pid] = ("nspawn", rp.parse_nspawn_cmdline(index._argv(pid)), None)


def scan(index):
    # type: (object) -> None
    for directory in index.paths["machines_dirs"]:
        for path in index._glob(directory.rstrip("/") + "/*", ignore=("unit:",)):  # machined's unit links
            text = index._read(path)
            if not text:
                continue
            fields = rp.parse_machine_file(text)
            name = fields.get("name") or os.path.basename(path)
            if fields.get("service") != "systemd-nspawn" or fields.get("class") not in (None, "container"):
                continue  # libvirt VMs and other machined registrations are not ours to name
            fields = {"runtime": "systemd-nspawn", "id": name, "name": name, "pid": fields.get("pid")}
            index._add("nspawn:" + name, "file:" + path, fields)


def parent_key(index, kind, opts, bundle):
    # type: (object, str, dict, object) -> object
    if not opts.get("name"):
        return None
    key = "nspawn:" + opts["name"]
    fields = {"runtime": "systemd-nspawn", "id": opts["name"], "name": opts["name"],
              "host_network": opts.get("host_network")}
    index._add(key, "cmdline:systemd-nspawn", fields)
    return key
