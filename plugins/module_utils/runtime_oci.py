# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""OCI runtimes (runc, crun): ``state.json`` under the runc roots; and the OCI bundle reader
the managers above them share (containerd's task bundles, podman's and CRI-O's ``userdata``).

An engine of the runtime index (``runtime_engines``). Target side: standard library only,
Python >= 3.8.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.nsguard.sysctl.plugins.module_utils import runtimes_parse as rp

RANKS = {"runc": 2}


def scan_bundle(index, bundle, namespace=None, manager=None, extra=None):
    # type: (object, str, object, object, object) -> None
    """One OCI bundle (``config.json`` and, for containerd, ``init.pid``). ``namespace``: the
    containerd namespace it lies in; ``manager``: the runtime that made it, when the bundle's
    annotations do not say."""
    path = bundle.rstrip("/") + "/config.json"
    cid = os.path.basename(bundle.rstrip("/"))
    if bundle.rstrip("/").endswith("/userdata"):
        cid = os.path.basename(os.path.dirname(bundle.rstrip("/")))
    errors = []
    fields = index._parse_once(path, rp.parse_oci_config, errors, owner=cid)
    if fields is None:
        return
    fields["id"] = cid
    if not fields.get("runtime"):
        # containerd namespace "moby" is dockerd's; "k8s.io" without annotations is unusual.
        fields["runtime"] = manager or ("docker" if namespace == "moby" else "containerd")
    if namespace and fields["runtime"] == "containerd":
        fields.setdefault("labels", {})["io.containerd.namespace"] = namespace
    pid_text = index._read(bundle.rstrip("/") + "/init.pid")
    if pid_text and pid_text.strip().isdigit():
        fields["pid"] = int(pid_text.strip())
    fields.update(extra or {})
    fields.update(index._host_flags(fields.get("namespaces", {})))
    fields["requested_source"] = path
    fields["bundle"] = bundle
    # The manager's own record (docker's hostconfig) names the user's sysctls; the bundle
    # says everything the runtime applied.
    index._add(cid, "file:" + path, fields, errors)


def scan(index):
    # type: (object) -> None
    """runc's ``state.json`` of every container under the runc roots."""
    for pattern in index.paths["runc_roots"]:
        for state_path in index._glob(pattern.rstrip("/") + "/*/state.json"):
            errors = []
            fields = index._parse_once(state_path, rp.parse_runc_state, errors,
                                       owner=os.path.basename(os.path.dirname(state_path)))
            if fields is None:
                continue
            fields.update(index._host_flags(fields.get("namespaces", {})))
            fields["requested_source"] = state_path
            index._add(fields["id"], "file:" + state_path, fields, errors)
