# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Podman and CRI-O, which share containers/storage: ``*-containers/containers.json`` and each
container's ``userdata`` bundle under the storage roots and runroots, and ``conmon``, the
monitor above every such container's init (its command line names the container, its bundle
and, for podman, a moved storage root). ``podman inspect`` is asked by ``runtime_cli``.

An engine of the runtime index (``runtime_engines``). Target side: standard library only,
Python >= 3.8.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.nsguard.sysctl.plugins.module_utils import runtime_cli
from ansible_collections.nsguard.sysctl.plugins.module_utils import runtimes_parse as rp
from ansible_collections.nsguard.sysctl.plugins.module_utils.runtime_oci import scan_bundle
from ansible_collections.nsguard.sysctl.plugins.module_utils.safefile import lexists_file

RANKS = {"podman": 4, "cri-o": 4}
DAEMONS = ("conmon",)
PARENTS = ("conmon",)


def discover(index, pid, comm):
    # type: (object, int, str) -> None
    opts = rp.parse_conmon_cmdline(index._argv(pid))
    index._by_parent[pid] = ("conmon", opts, None)
    bundle = opts.get("bundle")
    if opts.get("root"):
        index._extend("storage_roots", opts["root"])
    elif bundle and bundle.rstrip("/").endswith("/userdata"):
        index._extend("storage_roots", os.path.dirname(os.path.dirname(os.path.dirname(bundle.rstrip("/")))))
    if opts.get("runroot"):
        index._extend("storage_runroots", opts["runroot"])


def scan(index):
    # type: (object) -> None
    """containers/storage's containers.json plus each userdata bundle."""
    for root in index.paths["storage_roots"]:
        for listing in index._glob(root.rstrip("/") + "/*-containers/containers.json"):
            doc = index._read_json(listing)
            try:
                entries = rp.parse_storage_containers(doc) if doc is not None else {}
            except ValueError as exc:
                index._error(None, listing, str(exc))
                entries = {}
            for cid, fields in entries.items():
                fields = dict(fields, runtime=None)
                index._add(cid, "file:" + listing, fields)
            for userdata in index._glob(os.path.dirname(listing) + "/*/userdata"):
                scan_bundle(index, userdata)
    for runroot in index.paths["storage_runroots"]:
        for userdata in index._glob(runroot.rstrip("/") + "/*-containers/*/userdata"):
            cid = os.path.basename(os.path.dirname(userdata))
            pid_text = index._read(userdata + "/pidfile")
            if pid_text and pid_text.strip().isdigit():
                index._add(cid, "file:%s/pidfile" % userdata, {"pid": int(pid_text.strip()), "id": cid})
            if lexists_file(index._host(userdata + "/config.json")):
                scan_bundle(index, userdata)  # CRI-O keeps its bundles under the runroot


def parent_key(index, kind, opts, bundle):
    # type: (object, str, dict, object) -> object
    """The container a conmon monitors (``--cid``); podman's also asked with ``podman inspect``."""
    if not opts.get("id"):
        return None
    cid = opts["id"]
    podman = opts.get("manager") == "podman"
    if opts.get("bundle"):
        scan_bundle(index, opts["bundle"], manager="podman" if podman else None)
    fields = {"id": cid, "name": opts.get("name") if podman else None, "runtime": "podman" if podman else None}
    index._add(index._by_id.get(cid, cid), "cmdline:conmon", fields)
    if podman:
        runtime_cli.podman_inspect(index, cid, opts)
    return index._by_id.get(cid, cid)
