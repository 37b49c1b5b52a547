# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``ip netns``: named network namespaces (bind mounts under ``/run/netns``), by inode. A set
no runtime claims is named by its network namespace's name (runtime ``netns``).

An engine of the runtime index (``runtime_engines``). Target side: standard library only,
Python >= 3.8.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.nsguard.sysctl.plugins.module_utils import nsscan

RANKS = {"netns": 1}


def scan(index):
    # type: (object) -> None
    """mountinfo first, stat for the rest."""
    mounts = {}
    text = index._read_proc("self/mountinfo")
    if text is not None:
        mounts = nsscan.parse_mountinfo_nsfs(text)
    index._netns_names = nsscan.named_netns(mounts, tuple(index.paths["netns_dirs"]))
    for directory in index.paths["netns_dirs"]:
        for path in index._glob(directory.rstrip("/") + "/*"):
            try:
                inode = os.stat(index._host(path)).st_ino
            except OSError:
                continue
            names = index._netns_names.get(inode)
            if names is not None or not mounts:
                name = os.path.basename(path)
                if name not in index._netns_names.setdefault(inode, []):
                    index._netns_names[inode].append(name)
