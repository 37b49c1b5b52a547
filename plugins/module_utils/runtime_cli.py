# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The runtime index's fallbacks where the files leave a gap: Docker's HTTP API on its unix
socket, ``podman inspect`` and ``lxc-info``, each with the index's timeout, only when the
index was made with ``use_cli``. What was asked goes to ``index.cli_calls``, failures to
``index.errors``; answers become records like any file's.
Target side: standard library only, Python >= 3.8.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import socket
import stat
import subprocess

from ansible_collections.nsguard.sysctl.plugins.module_utils import runtimes_parse as rp
from ansible_collections.nsguard.sysctl.plugins.module_utils.runtime_paths import MAX_JSON_BYTES


def _unix_http_connection(path, timeout):
    """HTTP over a unix socket (Docker's API), standard library only. http.client is imported
    here: a gather without Docker (and every host-only gather) does not pay for it."""
    import http.client as http_client

    class UnixHTTPConnection(http_client.HTTPConnection):
        def connect(self):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            sock.connect(path)
            self.sock = sock

    return UnixHTTPConnection("localhost", timeout=timeout), http_client.HTTPException


def docker_api_get(socket_path, path, timeout=5.0):
    # type: (str, str, float) -> object
    """``GET path`` on Docker's API socket -> decoded JSON. Raises OSError or ValueError with
    a message naming the socket."""
    conn, http_error = _unix_http_connection(socket_path, timeout)
    try:
        conn.request("GET", path, headers={"Host": "docker"})
        resp = conn.getresponse()
        body = resp.read(MAX_JSON_BYTES)
        if resp.status != 200:
            raise ValueError("%s: GET %s: HTTP %d %s" % (socket_path, path, resp.status, body[:200].decode("utf-8", "replace").strip()))
        return json.loads(body.decode("utf-8"))
    except (OSError, socket.timeout, http_error) as exc:
        raise OSError("%s: GET %s: %s" % (socket_path, path, exc))
    finally:
        conn.close()


def which(name, extra=("/usr/bin", "/usr/sbin", "/bin", "/sbin")):
    # type: (str, tuple) -> object
    """The Debian-packaged binary first: ``/usr/local/bin/docker`` may be a different, newer
    CLI than the daemon (its error texts differ)."""
    for directory in extra:
        path = os.path.join(directory, name)
        if os.access(path, os.X_OK):
            return path
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        path = os.path.join(directory, name)
        if directory and os.access(path, os.X_OK):
            return path
    return None


def ask(index, runtime, cid):
    # type: (object, object, str) -> None
    """What the runtime's API or CLI says of container ``cid`` that only a cgroup named."""
    if not index.use_cli:
        return
    if runtime == "docker":
        docker_api_container(index, cid)
    elif runtime == "podman":
        podman_inspect(index, cid, {})


def docker_api_container(index, cid):
    # type: (object, str) -> None
    """``GET /containers/ID/json`` on the first Docker socket that answers. A socket path that
    is a symbolic link is not asked: it could lead to a socket a container serves."""
    for sock in index.paths["docker_sockets"]:
        try:
            if not stat.S_ISSOCK(os.lstat(index._host(sock)).st_mode):
                index._error(None, sock, "not a socket (a symbolic link or a file); not asked")
                continue
        except OSError:
            continue
        try:
            doc = docker_api_get(index._host(sock), "/containers/%s/json" % cid, index.timeout)
            fields = rp.parse_docker_container(doc)
        except (OSError, ValueError) as exc:
            index.errors.append({"stage": "identify", "message": "docker API: %s" % exc})
            continue
        index.cli_calls.append("api:%s" % sock)
        fields["requested_source"] = "api:%s /containers/%s/json" % (sock, cid[:12])
        index._add(cid, "api:%s" % sock, fields)
        return


def _podman_ids(index, cid, opts):
    # type: (object, str, dict) -> list
    """``cid`` and every podman container of the same storage root not asked yet: one call
    costs ~0.3 s, so they share it."""
    ids = [cid]
    for rec in index._records.values():
        for _rank, source, fields in rec["parts"]:
            if fields.get("runtime") == "podman" and fields.get("id") and fields["id"] not in index._podman_done:
                if fields["id"] not in ids and (not opts.get("root") or opts["root"] in source):
                    ids.append(fields["id"])
    return ids


def podman_inspect(index, cid, opts):
    # type: (object, str, dict) -> None
    """Labels, image name and the user's own ``--sysctl`` flags (podman 4.3 keeps them only
    in ``Config.CreateCommand``): one ``podman inspect`` per storage root (``opts``: conmon's
    ``root``/``runroot``/``tmpdir``)."""
    if not index.use_cli or cid in index._podman_done:
        return
    binary = which("podman")
    if binary is None:
        return
    root_args = []
    for flag, key in (("--root", "root"), ("--runroot", "runroot"), ("--tmpdir", "tmpdir")):
        if opts.get(key):
            root_args += [flag, opts[key]]
    ids = _podman_ids(index, cid, opts)
    index._podman_done.update(ids)
    argv = [binary] + root_args + ["inspect", "--type", "container"] + ids
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=index.timeout,
                              env=dict(os.environ, LC_ALL="C"), check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        index.errors.append({"stage": "identify", "message": "podman inspect: %s" % exc})
        return
    index.cli_calls.append("cli:podman inspect")
    try:
        docs = json.loads(proc.stdout.decode("utf-8", "replace") or "[]")
    except ValueError:
        docs = []
    if proc.returncode != 0 and not docs:
        index.errors.append({"stage": "identify", "message": "podman inspect exited %d: %s" % (
            proc.returncode, proc.stderr.decode("utf-8", "replace").strip()[:300])})
        return
    for doc in docs if isinstance(docs, list) else []:
        try:
            fields = rp.parse_podman_inspect(doc)
        except ValueError:
            continue
        user = rp.cli_options(list((doc.get("Config") or {}).get("CreateCommand") or []),
                              {"--sysctl": "sysctl"}, repeated=("sysctl",)).get("sysctl", [])
        fields["user_sysctls"] = [s.split("=", 1)[0] for s in user]
        index._add(index._by_id.get(fields["id"], fields["id"]), "cli:podman inspect", fields)


def lxc_info_pids(index):
    # type: (object) -> list
    """``lxc-info -pH`` for LXC containers no process told us about (last resort, once per
    index): the keys of the records that gained a pid."""
    index._lxc_info_done = True
    binary = which("lxc-info")
    keys = []
    if binary is None:
        return keys
    for key in sorted(k for k in index._records if k.startswith("lxc:")):
        merged = index._merged(key)
        if merged.get("pid"):
            continue
        argv = [binary, "-P", merged.get("lxcpath") or "/var/lib/lxc", "-n", merged.get("name") or key[4:], "-pH"]
        try:
            proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=index.timeout,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            index.errors.append({"stage": "identify", "message": "lxc-info: %s" % exc})
            continue
        index.cli_calls.append("cli:lxc-info")
        text = proc.stdout.decode("ascii", "replace").strip()
        if proc.returncode == 0 and text.isdigit():
            index._add(key, "cli:lxc-info", {"pid": int(text)})
            keys.append(key)
    return keys
