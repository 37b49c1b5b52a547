# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where container runtimes keep their state: the search paths of the runtime index, and the
directories no host file may lead into.

A table of its own so that ``persisted`` (which refuses sysctl.d links into container state)
takes it without the scanners. The keys are the ``runtime_paths`` option's location kinds;
each engine module (``runtime_engines.ENGINES``) reads the kinds of its block.
Target side: standard library only, Python >= 3.8.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.nsguard.sysctl.plugins.module_utils.nsscan import NAMED_NETNS_DIRS
from ansible_collections.nsguard.sysctl.plugins.module_utils.safefile import literal_prefix

DEFAULT_PATHS = {
    # runtime_docker
    "docker_roots": ["/var/lib/docker"],
    "docker_exec_roots": ["/run/docker", "/var/run/docker"],
    "docker_sockets": ["/run/docker.sock", "/var/run/docker.sock"],
    "docker_daemon_json": ["/etc/docker/daemon.json"],
    # runtime_containerd
    "containerd_task_dirs": ["/run/containerd/io.containerd.runtime.v2.task",
                             "/run/containerd/io.containerd.runtime.v1.linux"],
    # runtime_oci
    "runc_roots": ["/run/runc", "/run/crun", "/run/containerd/runc/*", "/run/docker/runtime-runc/*"],
    # runtime_storage (podman, CRI-O)
    "storage_roots": ["/var/lib/containers/storage"],
    "storage_runroots": ["/run/containers/storage"],
    # runtime_lxc
    "lxc_paths": ["/var/lib/lxc"],
    "lxc_conf": ["/etc/lxc/lxc.conf"],
    # runtime_nspawn
    "machines_dirs": ["/run/systemd/machines"],
    # runtime_netns
    "netns_dirs": list(NAMED_NETNS_DIRS),
}

# The largest runtime metadata document read, a file or an API answer.
MAX_JSON_BYTES = 8 * 1024 * 1024
# Search-path kinds that name directories: below them no symbolic link is followed.
DIR_KINDS = ("docker_roots", "docker_exec_roots", "containerd_task_dirs", "runc_roots", "storage_roots",
             "storage_runroots", "lxc_paths", "machines_dirs", "netns_dirs")
# Where runtimes keep container filesystems that the index never reads (snapshots, pod volumes,
# machine images): no host file may lead there either (persisted.refused_roots).
CONTAINER_FS_DIRS = ("/var/lib/containerd", "/var/lib/kubelet", "/var/lib/machines", "/var/lib/incus",
                     "/var/lib/lxd", "/var/snap/lxd")


def state_dirs(*path_maps):
    # type: (*object) -> list
    """The directories (literal prefixes of the patterns) of the directory kinds in
    ``path_maps`` (each keyed as :data:`DEFAULT_PATHS`, or None): what lies below them belongs
    to the runtimes and their containers."""
    out = []
    for paths in path_maps:
        for kind in DIR_KINDS:
            for pattern in (paths or {}).get(kind, ()):
                prefix = literal_prefix(pattern)
                if prefix != "/" and prefix not in out:
                    out.append(prefix)
    return out
