# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Who a namespace set is: the container runtime, id, name, image and requested sysctls.

:class:`RuntimeIndex` reads the host's runtime metadata once per gather and then answers
:meth:`RuntimeIndex.identify` for each namespace set. Sources, all on the host:

- ``/proc``: cgroup paths of the set's init (every runtime names its cgroups), its ancestors
  (``containerd-shim``, ``conmon``, ``[lxc monitor]``, ``systemd-nspawn``) and the command
  lines of the daemons, which say where non-default state lives (``dockerd --data-root``);
- Docker ``containers/*/{config.v2.json,hostconfig.json}``; containerd task bundles
  (``io.containerd.runtime.v2.task/NS/ID/config.json``, Kubernetes annotations); podman and
  CRI-O ``overlay-containers`` (``containers.json``, ``userdata/config.json``); runc
  ``state.json``; LXC ``config``; ``/run/systemd/machines``; ``ip netns`` bind mounts;
- when ``use_cli``: Docker's HTTP API on its unix socket, ``podman inspect`` and ``lxc-info``,
  each with a timeout, only where files leave a gap.

Never read inside a container's root filesystem and never execute anything from it.
Target side: standard library only, Python >= 3.8.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import socket
import stat
import subprocess

from ansible_collections.nsguard.sysctl.plugins.module_utils import nsscan, procinfo
from ansible_collections.nsguard.sysctl.plugins.module_utils.safefile import (
    UnsafeFile, glob_beneath, lexists_file, literal_prefix, read_regular)
from ansible_collections.nsguard.sysctl.plugins.module_utils import runtimes_parse as rp

DEFAULT_PATHS = {
    "docker_roots": ["/var/lib/docker"],
    "docker_exec_roots": ["/run/docker", "/var/run/docker"],
    "docker_sockets": ["/run/docker.sock", "/var/run/docker.sock"],
    "docker_daemon_json": ["/etc/docker/daemon.json"],
    "containerd_task_dirs": ["/run/containerd/io.containerd.runtime.v2.task",
                             "/run/containerd/io.containerd.runtime.v1.linux"],
    "runc_roots": ["/run/runc", "/run/crun", "/run/containerd/runc/*", "/run/docker/runtime-runc/*"],
    "storage_roots": ["/var/lib/containers/storage"],
    "storage_runroots": ["/run/containers/storage"],
    "lxc_paths": ["/var/lib/lxc"],
    "lxc_conf": ["/etc/lxc/lxc.conf"],
    "machines_dirs": ["/run/systemd/machines"],
    "netns_dirs": list(nsscan.NAMED_NETNS_DIRS),
}

# Daemons whose command lines say where runtime state lives (also containerd-shim*, lxc*).
DAEMON_COMMS = ("dockerd", "containerd", "conmon", "systemd-nspawn")
# A runtime that manages containers outranks the OCI runtime that starts them: the same id
# found in dockerd's files and in runc's state.json is a docker container.
RANK = {"docker": 4, "podman": 4, "cri-o": 4, "lxc": 4, "systemd-nspawn": 4, "containerd": 3,
        "runc": 2, "netns": 1, "unknown": 0}
# How much a match says: the runtime's own record of the pid beats a cgroup name, which beats
# an ancestor process, which beats a shared network namespace.
EVIDENCE = {"pid": 4, "cgroup": 3, "parent": 2, "netns": 1}

IDENTITY_FIELDS = ("runtime", "id", "name", "image", "pod_name", "pod_namespace", "netns_name")
MAX_ANCESTORS = 6
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


def _which(name, extra=("/usr/bin", "/usr/sbin", "/bin", "/sbin")):
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


class RuntimeIndex(object):
    """Runtime metadata of one host, read once, queried per namespace set.

    ``use_cli``: ask the runtime's API socket or CLI where the files leave a gap. ``timeout``:
    seconds for each such call. ``root``/``proc``: where the host's files and procfs are (tests
    point them at recorded trees). ``paths``: extra or replacement search paths, keyed as
    :data:`DEFAULT_PATHS`; ``discover``: also learn paths from running daemons' command lines.
    """

    def __init__(self, use_cli=True, timeout=5.0, root="/", proc="/proc", paths=None, discover=True):
        self.use_cli = use_cli
        self.timeout = timeout
        self.root = root
        self.proc = proc
        self.discover = discover
        self.paths = dict((k, list(v)) for k, v in DEFAULT_PATHS.items())
        for key, value in (paths or {}).items():
            self.paths[key] = list(value)
        self.errors = []          # scan errors not tied to one container
        self.cli_calls = []       # what was executed or asked, for the result's sources
        self._scanned = False
        self._records = {}        # key -> {"parts": [(rank, source, fields)], "errors": [...]}
        self._by_pid = {}
        self._by_id = {}
        self._by_name = {}        # (runtime, name) -> key
        self._by_parent = {}      # pid of conmon / lxc monitor / nspawn / shim -> key or ns dir
        self._netns_names = {}
        self._sandbox_netns = {}  # net inode -> key (Docker sandbox bind mounts)
        self._procs = {}
        self._host_ns = {}
        self._beneath_dirs = None  # state_dirs(self.paths), longest first; reset when paths grow
        self._seen_files = set()
        self._podman_done = set()
        self._lxc_info_done = False
        self._reported = set()    # records some identify() returned

    # -- paths and files --------------------------------------------------------------------

    def _host(self, path):
        # type: (str) -> str
        if self.root in ("/", ""):
            return path
        return os.path.join(self.root, path.lstrip("/"))

    def _glob(self, pattern, ignore=()):
        # type: (str, tuple) -> list
        """Host paths (as the host names them) matching ``pattern``; a symbolic link below the
        pattern's literal prefix is an error naming it, not followed (:func:`glob_beneath`)."""
        prefix = "" if self.root in ("/", "") else self.root.rstrip("/")

        def on_link(path, target):
            self._error(None, path[len(prefix):], "a symbolic link (-> %s); not followed" % target)
        return [p[len(prefix):] for p in glob_beneath(self._host(pattern), on_link, ignore)]

    def _beneath(self, path):
        # type: (str) -> tuple
        """(directory, follow_last) for reading ``path``: the deepest configured runtime
        directory holding it (nothing below it is followed), else the file's own directory;
        a configured file (daemon.json, lxc.conf) may itself be a symbolic link."""
        if any(path in patterns for kind, patterns in self.paths.items() if kind not in DIR_KINDS):
            return os.path.dirname(path), True
        if self._beneath_dirs is None:
            self._beneath_dirs = sorted(state_dirs(self.paths), key=len, reverse=True)
        for directory in self._beneath_dirs:
            if path.startswith(directory + "/"):
                return directory, False
        return os.path.dirname(path), False

    def _read(self, path, errors=None, follow=False):
        # type: (str, object, bool) -> object
        """Text of a host file; ``None`` when missing; other failures (a planted symbolic link,
        a FIFO, a device, a file over the cap, bad UTF-8) recorded in ``errors``, naming it."""
        beneath, follow_last = self._beneath(path)
        try:
            data = read_regular(self._host(path), MAX_JSON_BYTES, beneath=self._host(beneath),
                                follow_last=follow or follow_last)
            return data.decode("utf-8")
        except UnsafeFile as exc:
            self._error(errors, path, exc.strerror)
            return None
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (OSError, UnicodeDecodeError) as exc:
            self._error(errors, path, "cannot read: %s" % (getattr(exc, "strerror", None) or exc))
            return None

    def _read_json(self, path, errors=None):
        # type: (str, object) -> object
        text = self._read(path, errors)
        if text is None:
            return None
        try:
            return json.loads(text)
        except ValueError as exc:
            self._error(errors, path, "malformed JSON: %s" % exc)
            return None

    def _parse_once(self, path, parser, errors, owner=None):
        # type: (str, object, list, object) -> object
        """``parser(json_doc)`` of a file not parsed before; ``None`` when the file is missing,
        was parsed already, or is malformed. A malformed file's error (naming it) goes to the
        record of ``owner`` (the container it describes), so the set it belongs to reports it;
        without an owner, to :attr:`errors`."""
        if path in self._seen_files:
            return None
        self._seen_files.add(path)
        sink = self._record(owner)["errors"] if owner else self.errors
        doc = self._read_json(path, errors)
        if doc is None:
            sink.extend(errors)
            return None
        try:
            return parser(doc)
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            # Valid JSON of the wrong shape (a number where a name belongs): this file's error,
            # not the end of the scan.
            self._error(sink, path, "unexpected content (%s: %s)" % (type(exc).__name__, exc))
            return None

    def _error(self, errors, path, message):
        # type: (object, str, str) -> None
        entry = {"stage": "identify", "file": path, "message": "%s: %s" % (path, message)}
        (self.errors if errors is None else errors).append(entry)

    # -- records ----------------------------------------------------------------------------

    def _record(self, key):
        # type: (str) -> dict
        return self._records.setdefault(key, {"parts": [], "errors": []})

    def _add(self, key, source, fields, errors=()):
        # type: (str, str, dict, tuple) -> None
        """One source's view of a container. Fields set to None are unknown and ignored."""
        rec = self._record(key)
        rank = RANK.get(fields.get("runtime") or "unknown", 0)
        rec["parts"].append((rank, source, dict((k, v) for k, v in fields.items() if v is not None)))
        rec["errors"].extend(errors)
        if isinstance(fields.get("pid"), int):
            self._by_pid.setdefault(fields["pid"], set()).add(key)
        if fields.get("id"):
            self._by_id.setdefault(fields["id"], key)
        if fields.get("name") and fields.get("runtime"):
            self._by_name.setdefault((fields["runtime"], fields["name"]), key)

    # -- the scan ---------------------------------------------------------------------------

    def scan(self):
        # type: () -> None
        """Read everything once (called by the first :meth:`identify`)."""
        if self._scanned:
            return
        self._scanned = True
        self._read_host_ns()
        self._read_processes()
        if self.discover:
            self._discover_from_processes()
        self._scan_docker()
        self._scan_containerd()
        self._scan_storage()
        self._scan_runc()
        self._scan_lxc()
        self._scan_machines()
        self._scan_netns()

    def _read_host_ns(self):
        # type: () -> None
        for nstype in ("net", "ipc", "uts", "user", "pid", "mnt"):
            try:
                self._host_ns[nstype] = os.stat("%s/self/ns/%s" % (self.proc, nstype)).st_ino
            except OSError:
                continue

    def _read_processes(self):
        # type: () -> None
        """comm/ppid/starttime of every process: for ancestors and runtime daemons."""
        try:
            names = os.listdir(self.proc)
        except OSError as exc:
            self._error(None, self.proc, "cannot list: %s" % exc)
            return
        for name in names:
            if not name.isdigit():
                continue
            try:
                with open("%s/%s/stat" % (self.proc, name), "r") as handle:
                    self._procs[int(name)] = nsscan.parse_stat(handle.read())
            except (OSError, ValueError, IndexError):
                continue  # exited meanwhile

    def _argv(self, pid):
        # type: (int) -> list
        try:
            return procinfo.read_argv(pid, self.proc)
        except OSError:
            return []

    def _discover_from_processes(self):
        # type: () -> None
        """Where running daemons keep state, from their command lines (host /proc only)."""
        for pid, st in sorted(self._procs.items()):
            comm = st["comm"]
            if comm not in DAEMON_COMMS and not comm.startswith(("containerd-shim", "lxc")):
                continue
            if not self._host_daemon(pid):
                # A process anyone can start (or a container's, or an unprivileged user's) may
                # call itself dockerd or conmon: its paths would lead us anywhere.
                continue
            if comm == "dockerd":
                opts = rp.parse_dockerd_cmdline(self._argv(pid))
                self._extend("docker_roots", opts.get("data_root"))
                self._extend("docker_exec_roots", opts.get("exec_root"))
                for sock in opts.get("sockets", []):
                    self._extend("docker_sockets", sock)
                if opts.get("config_file"):
                    self._extend("docker_daemon_json", opts["config_file"])
            elif comm == "containerd":
                argv = self._argv(pid)
                config = rp.cli_options(argv[1:], {"--config": "config", "-c": "config"}).get("config")
                text = self._read(config or "/etc/containerd/config.toml", follow=True)
                if text:
                    state = rp.parse_containerd_toml_paths(text).get("state")
                    if state:
                        self._extend("containerd_task_dirs", state + "/io.containerd.runtime.v2.task")
            elif comm.startswith("containerd-shim"):
                bundle = self._cwd(pid)
                if bundle:
                    # shim v2 runs in the task's bundle: .../io.containerd.runtime.v2.task/NS/ID
                    self._extend("containerd_task_dirs", os.path.dirname(os.path.dirname(bundle)))
                    self._by_parent[pid] = ("shim", rp.parse_shim_cmdline(self._argv(pid)), bundle)
            elif comm == "conmon":
                opts = rp.parse_conmon_cmdline(self._argv(pid))
                self._by_parent[pid] = ("conmon", opts, None)
                bundle = opts.get("bundle")
                if opts.get("root"):
                    self._extend("storage_roots", opts["root"])
                elif bundle and bundle.rstrip("/").endswith("/userdata"):
                    self._extend("storage_roots", os.path.dirname(os.path.dirname(os.path.dirname(bundle.rstrip("/")))))
                if opts.get("runroot"):
                    self._extend("storage_runroots", opts["runroot"])
            elif comm in ("lxc-start", "lxc-monitord") or comm.startswith("lxc"):
                parsed = rp.parse_lxc_monitor_cmdline(self._argv(pid))
                if parsed:
                    self._extend("lxc_paths", parsed["lxcpath"])
                    self._by_parent[pid] = ("lxc", parsed, None)
            elif comm == "systemd-nspawn":
                self._by_parent[pid] = ("nspawn", rp.parse_nspawn_cmdline(self._argv(pid)), None)
        for path in self.paths["docker_daemon_json"]:
            doc = self._read_json(path)
            opts = rp.parse_docker_daemon_json(doc) if doc is not None else {}
            self._extend("docker_roots", opts.get("data_root"))
            self._extend("docker_exec_roots", opts.get("exec_root"))
            for sock in opts.get("sockets", []):
                self._extend("docker_sockets", sock)
        for path in self.paths["lxc_conf"]:
            text = self._read(path) or ""
            for line in text.splitlines():
                key, sep, value = line.partition("=")
                if sep and key.strip() == "lxc.lxcpath" and value.strip():
                    self._extend("lxc_paths", value.strip())

    def _host_daemon(self, pid):
        # type: (int) -> bool
        """Whether ``pid`` may tell us where runtime state lives: it runs as the host's root
        (effective uid 0 as the host sees it) in the host's mount and user namespaces, as
        dockerd, containerd, its shims, rootful conmon and the LXC monitor do. A recorded
        tree (``proc`` other than /proc) keeps no namespace links and is taken as it is."""
        if self.proc != "/proc":
            return True
        status = self._read_proc("%d/status" % pid)
        if status is None:
            return False
        for nstype in ("mnt", "user"):
            try:
                if os.stat("%s/%d/ns/%s" % (self.proc, pid, nstype)).st_ino != self._host_ns.get(nstype):
                    return False
            except OSError:
                return False
        return procinfo.int_field(procinfo.parse_status(status).get("Uid", ""), 1) == 0

    def _extend(self, kind, path):
        # type: (str, object) -> None
        if path and path not in self.paths[kind]:
            self.paths[kind].append(path)
            self._beneath_dirs = None

    def _cwd(self, pid):
        # type: (int) -> object
        try:
            return os.readlink("%s/%d/cwd" % (self.proc, pid))
        except OSError:
            return None

    def _scan_docker(self):
        # type: () -> None
        for exec_root in self.paths["docker_exec_roots"]:
            # dockerd's private containerd and runc state live under its exec-root.
            self._extend("containerd_task_dirs", exec_root + "/containerd/daemon/io.containerd.runtime.v2.task")
            self._extend("runc_roots", exec_root + "/runtime-runc/*")
        for data_root in self.paths["docker_roots"]:
            for cdir in self._glob(data_root.rstrip("/") + "/containers/*"):
                config_path = cdir + "/config.v2.json"
                errors = []
                hostconfig = self._read_json(cdir + "/hostconfig.json", errors)
                fields = self._parse_once(config_path, lambda doc, hc=hostconfig: rp.parse_docker_container(doc, hc or {}),
                                          errors, owner=os.path.basename(cdir))
                if fields is None:
                    continue
                fields["requested_source"] = cdir + "/hostconfig.json" if fields.get("requested") else None
                self._add(fields["id"], "file:" + config_path, fields, errors)
                if fields.get("sandbox_key"):
                    self._sandbox_key(fields["sandbox_key"], fields["id"])

    def _sandbox_key(self, path, key):
        # type: (str, str) -> None
        try:
            self._sandbox_netns[os.stat(self._host(path)).st_ino] = key
        except OSError:
            return

    def _scan_containerd(self):
        # type: () -> None
        for task_dir in self.paths["containerd_task_dirs"]:
            for bundle in self._glob(task_dir.rstrip("/") + "/*/*"):
                self._scan_bundle(bundle, namespace=os.path.basename(os.path.dirname(bundle)))

    def _scan_bundle(self, bundle, namespace=None, manager=None, extra=None):
        # type: (str, object, object, object) -> None
        """One OCI bundle (``config.json`` and, for containerd, ``init.pid``)."""
        path = bundle.rstrip("/") + "/config.json"
        cid = os.path.basename(bundle.rstrip("/"))
        if bundle.rstrip("/").endswith("/userdata"):
            cid = os.path.basename(os.path.dirname(bundle.rstrip("/")))
        errors = []
        fields = self._parse_once(path, rp.parse_oci_config, errors, owner=cid)
        if fields is None:
            return
        fields["id"] = cid
        if not fields.get("runtime"):
            # containerd namespace "moby" is dockerd's; "k8s.io" without annotations is unusual.
            fields["runtime"] = manager or ("docker" if namespace == "moby" else "containerd")
        if namespace and fields["runtime"] == "containerd":
            fields.setdefault("labels", {})["io.containerd.namespace"] = namespace
        pid_text = self._read(bundle.rstrip("/") + "/init.pid")
        if pid_text and pid_text.strip().isdigit():
            fields["pid"] = int(pid_text.strip())
        fields.update(extra or {})
        fields.update(self._host_flags(fields.get("namespaces", {})))
        fields["requested_source"] = path
        fields["bundle"] = bundle
        # The manager's own record (docker's hostconfig) names the user's sysctls; the bundle
        # says everything the runtime applied.
        self._add(cid, "file:" + path, fields, errors)

    def _host_flags(self, namespaces):
        # type: (dict) -> dict
        def same_as_host(path, nstype):
            try:
                return os.stat(self._host(path)).st_ino == self._host_ns[nstype]
            except (OSError, KeyError):
                return None
        return rp.host_flags(namespaces, same_as_host)

    def _scan_storage(self):
        # type: () -> None
        """podman / CRI-O: containers/storage's containers.json plus each userdata bundle."""
        for root in self.paths["storage_roots"]:
            for listing in self._glob(root.rstrip("/") + "/*-containers/containers.json"):
                doc = self._read_json(listing)
                try:
                    entries = rp.parse_storage_containers(doc) if doc is not None else {}
                except ValueError as exc:
                    self._error(None, listing, str(exc))
                    entries = {}
                for cid, fields in entries.items():
                    fields = dict(fields, runtime=None)
                    self._add(cid, "file:" + listing, fields)
                for userdata in self._glob(os.path.dirname(listing) + "/*/userdata"):
                    self._scan_bundle(userdata)
        for runroot in self.paths["storage_runroots"]:
            for userdata in self._glob(runroot.rstrip("/") + "/*-containers/*/userdata"):
                cid = os.path.basename(os.path.dirname(userdata))
                pid_text = self._read(userdata + "/pidfile")
                if pid_text and pid_text.strip().isdigit():
                    self._add(cid, "file:%s/pidfile" % userdata, {"pid": int(pid_text.strip()), "id": cid})
                if lexists_file(self._host(userdata + "/config.json")):
                    self._scan_bundle(userdata)  # CRI-O keeps its bundles under the runroot

    def _scan_runc(self):
        # type: () -> None
        for pattern in self.paths["runc_roots"]:
            for state_path in self._glob(pattern.rstrip("/") + "/*/state.json"):
                errors = []
                fields = self._parse_once(state_path, rp.parse_runc_state, errors,
                                          owner=os.path.basename(os.path.dirname(state_path)))
                if fields is None:
                    continue
                fields.update(self._host_flags(fields.get("namespaces", {})))
                fields["requested_source"] = state_path
                self._add(fields["id"], "file:" + state_path, fields, errors)

    def _scan_lxc(self):
        # type: () -> None
        for lxcpath in self.paths["lxc_paths"]:
            for config_path in self._glob(lxcpath.rstrip("/") + "/*/config"):
                if config_path in self._seen_files:
                    continue
                self._seen_files.add(config_path)
                name = os.path.basename(os.path.dirname(config_path))
                errors = []
                text = self._read(config_path, errors)
                if text is None:
                    self._record("lxc:" + name)["errors"].extend(errors)
                    continue
                fields = rp.parse_lxc_config(text)
                fields.update({"id": name, "name": name, "lxcpath": lxcpath,
                               "requested_source": config_path})
                self._add("lxc:" + name, "file:" + config_path, fields, errors)

    def _scan_machines(self):
        # type: () -> None
        for directory in self.paths["machines_dirs"]:
            for path in self._glob(directory.rstrip("/") + "/*", ignore=("unit:",)):  # machined's unit links
                text = self._read(path)
                if not text:
                    continue
                fields = rp.parse_machine_file(text)
                name = fields.get("name") or os.path.basename(path)
                if fields.get("service") != "systemd-nspawn" or fields.get("class") not in (None, "container"):
                    continue  # libvirt VMs and other machined registrations are not ours to name
                fields = {"runtime": "systemd-nspawn", "id": name, "name": name, "pid": fields.get("pid")}
                self._add("nspawn:" + name, "file:" + path, fields)

    def _scan_netns(self):
        # type: () -> None
        """Named network namespaces, by inode: mountinfo first, stat for the rest."""
        mounts = {}
        text = self._read_proc("self/mountinfo")
        if text is not None:
            mounts = nsscan.parse_mountinfo_nsfs(text)
        self._netns_names = nsscan.named_netns(mounts, tuple(self.paths["netns_dirs"]))
        for directory in self.paths["netns_dirs"]:
            for path in self._glob(directory.rstrip("/") + "/*"):
                try:
                    inode = os.stat(self._host(path)).st_ino
                except OSError:
                    continue
                names = self._netns_names.get(inode)
                if names is not None or not mounts:
                    name = os.path.basename(path)
                    if name not in self._netns_names.setdefault(inode, []):
                        self._netns_names[inode].append(name)

    def _read_proc(self, rel):
        # type: (str) -> object
        try:
            with open("%s/%s" % (self.proc, rel), "r") as handle:
                return handle.read()
        except OSError:
            return None

    def unreported_errors(self):
        # type: () -> list
        """Scan errors no :meth:`identify` result carried: files of no container, and files of
        containers no namespace set matched (e.g. a malformed state of a stopped container).
        The caller adds them to the gather's top-level errors."""
        out = list(self.errors)
        for key in sorted(self._records):
            if key not in self._reported:
                out.extend(self._records[key]["errors"])
        return out

    # -- identify ---------------------------------------------------------------------------

    def identify(self, pids=(), init_pid=None, ns=None):
        # type: (object, object, object) -> dict
        """Identity, requested sysctls and host_* flags of one namespace set.

        ``pids``: its member pids; ``init_pid``: its representative (the container's init);
        ``ns``: ``{type: inode}``. Sets nobody claims are ``unknown`` (or ``netns`` when their
        network namespace has an ``ip netns`` name). Never raises for vanished processes or bad
        metadata: those become ``errors`` entries.
        """
        self.scan()
        ns = ns or {}
        errors = []
        matches = {}   # key -> (evidence strength, [sources])

        def note(key, strength, source):
            best, sources = matches.get(key, (0, []))
            if source not in sources:
                sources.append(source)
            matches[key] = (max(best, strength), sources)

        members = [p for p in ([init_pid] if init_pid else []) + list(pids or []) if isinstance(p, int)]
        self._match_pids(members, init_pid, note)
        hints = []
        if init_pid:
            try:
                paths = procinfo.read_cgroup_paths(init_pid, self.proc)
                hints = rp.cgroup_hints(paths)
            except OSError as exc:
                errors.append({"stage": "identify", "message": "pid %d: cannot read its cgroup (%s); "
                               "the process probably exited" % (init_pid, exc.strerror or exc)})
        for hint in hints:
            key = self._key_for_hint(hint)
            note(key, EVIDENCE["cgroup"], "cgroup:%s" % hint["path"])

        for key, source in self._ancestor_matches(init_pid):
            note(key, EVIDENCE["parent"], source)

        net = ns.get("net")
        netns_names = self._netns_names.get(net, []) if net else []
        sandbox = self._sandbox_netns.get(net) if net else None
        if sandbox:
            note(sandbox, EVIDENCE["netns"], "netns:%d" % net)

        if not matches and self.use_cli and members and not self._lxc_info_done:
            # Last resort for LXC containers started in ways we did not see: ask lxc-info.
            if self._lxc_info_pids():
                self._match_pids(members, init_pid, note)

        result = self._build(matches, errors)
        if netns_names:
            result["identity"]["netns_name"] = netns_names[0]
            result["identity"]["sources"].append("netns:/run/netns/%s" % netns_names[0])
            if result["identity"]["runtime"] == "unknown":
                result["identity"]["runtime"] = "netns"
                result["identity"]["name"] = netns_names[0]
        return result

    def _match_pids(self, members, init_pid, note):
        # type: (list, object, object) -> None
        for pid in members:
            for key in sorted(self._by_pid.get(pid, ())):
                if not self._pid_is_reused(key, pid):
                    note(key, EVIDENCE["pid"] + (1 if pid == init_pid else 0), "pid:%d" % pid)

    def _pid_is_reused(self, key, pid):
        # type: (str, int) -> bool
        """runc records the init's start time: a different one means the pid was reused."""
        start = self._merged(key).get("pid_start")
        if start is None or pid not in self._procs:
            return False
        return self._procs[pid].get("starttime") != start

    def _key_for_hint(self, hint):
        # type: (dict) -> str
        """The record a cgroup hint names; a new record from the hint alone (and, when allowed,
        the runtime's API) when no file described it."""
        runtime = hint.get("runtime")
        if hint.get("id"):
            cid = hint["id"]
            key = self._by_id.get(cid)
            if key is None:
                key = cid
                self._add(key, "cgroup:" + hint["path"], {"runtime": runtime, "id": cid})
                self._ask_cli(runtime, cid)
            return key
        name = hint.get("name")
        if runtime == "lxc":
            key = "lxc:" + name
        elif runtime == "systemd-nspawn":
            key = "nspawn:" + name
        else:
            key = self._by_name.get((runtime, name), "%s:%s" % (runtime, name))
        if key not in self._records:
            self._add(key, "cgroup:" + hint["path"], {"runtime": runtime, "id": name, "name": name})
        return key

    def _ancestor_matches(self, pid):
        # type: (object) -> list
        """Runtime processes above the init: conmon (podman, CRI-O), containerd-shim, the LXC
        monitor, systemd-nspawn."""
        out = []
        seen = set()
        current = pid
        for _step in range(MAX_ANCESTORS):
            st = self._procs.get(current) if current else None
            if st is None:
                try:
                    with open("%s/%d/stat" % (self.proc, current), "r") as handle:
                        st = nsscan.parse_stat(handle.read())
                except (OSError, ValueError, IndexError, TypeError):
                    break
            parent = st["ppid"]
            if parent in (0, 1) or parent in seen:
                break
            seen.add(parent)
            entry = self._by_parent.get(parent)
            if entry is not None:
                kind, opts, bundle = entry
                key = self._parent_key(kind, opts, bundle)
                if key:
                    out.append((key, "parent:%s:%d" % (kind, parent)))
                    break
            current = parent
        return out

    def _parent_key(self, kind, opts, bundle):
        # type: (str, dict, object) -> object
        if kind == "conmon" and opts.get("id"):
            cid = opts["id"]
            if opts.get("bundle"):
                self._scan_bundle(opts["bundle"], manager="podman" if opts.get("manager") == "podman" else None)
            fields = {"id": cid, "name": opts.get("name") if opts.get("manager") == "podman" else None,
                      "runtime": "podman" if opts.get("manager") == "podman" else None}
            self._add(self._by_id.get(cid, cid), "cmdline:conmon", fields)
            if opts.get("manager") == "podman":
                self._podman_inspect(cid, opts)
            return self._by_id.get(cid, cid)
        if kind == "shim":
            if bundle:
                self._scan_bundle(bundle, namespace=opts.get("namespace"))
            cid = opts.get("id") or (os.path.basename(bundle) if bundle else None)
            return self._by_id.get(cid) if cid else None
        if kind == "lxc":
            key = "lxc:" + opts["name"]
            if key not in self._records:
                self._add(key, "cmdline:lxc-monitor", {"runtime": "lxc", "id": opts["name"], "name": opts["name"]})
            return key
        if kind == "nspawn" and opts.get("name"):
            key = "nspawn:" + opts["name"]
            fields = {"runtime": "systemd-nspawn", "id": opts["name"], "name": opts["name"],
                      "host_network": opts.get("host_network")}
            self._add(key, "cmdline:systemd-nspawn", fields)
            return key
        return None

    # -- CLI and API, only where the files leave a gap --------------------------------------

    def _ask_cli(self, runtime, cid):
        # type: (object, str) -> None
        if not self.use_cli:
            return
        if runtime == "docker":
            for sock in self.paths["docker_sockets"]:
                try:
                    if not stat.S_ISSOCK(os.lstat(self._host(sock)).st_mode):
                        # A symbolic link could lead to a socket a container serves.
                        self._error(None, sock, "not a socket (a symbolic link or a file); not asked")
                        continue
                except OSError:
                    continue
                try:
                    doc = docker_api_get(self._host(sock), "/containers/%s/json" % cid, self.timeout)
                    fields = rp.parse_docker_container(doc)
                except (OSError, ValueError) as exc:
                    self.errors.append({"stage": "identify", "message": "docker API: %s" % exc})
                    continue
                self.cli_calls.append("api:%s" % sock)
                fields["requested_source"] = "api:%s /containers/%s/json" % (sock, cid[:12])
                self._add(cid, "api:%s" % sock, fields)
                return
        elif runtime == "podman":
            self._podman_inspect(cid, {})

    def _podman_inspect(self, cid, opts):
        # type: (str, dict) -> None
        """Labels, image name and the user's own ``--sysctl`` flags (podman 4.3 keeps them only
        in ``Config.CreateCommand``): one ``podman inspect`` per storage root."""
        if not self.use_cli or cid in self._podman_done:
            return
        binary = _which("podman")
        if binary is None:
            return
        root_args = []
        for flag, key in (("--root", "root"), ("--runroot", "runroot"), ("--tmpdir", "tmpdir")):
            if opts.get(key):
                root_args += [flag, opts[key]]
        ids = [cid]
        # Every podman container of the same storage root in the same call: it costs ~0.3 s.
        for key, rec in self._records.items():
            for _rank, source, fields in rec["parts"]:
                if fields.get("runtime") == "podman" and fields.get("id") and fields["id"] not in self._podman_done:
                    if fields["id"] not in ids and (not opts.get("root") or opts["root"] in source):
                        ids.append(fields["id"])
        self._podman_done.update(ids)
        argv = [binary] + root_args + ["inspect", "--type", "container"] + ids
        try:
            proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=self.timeout,
                                  env=dict(os.environ, LC_ALL="C"), check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            self.errors.append({"stage": "identify", "message": "podman inspect: %s" % exc})
            return
        self.cli_calls.append("cli:podman inspect")
        try:
            docs = json.loads(proc.stdout.decode("utf-8", "replace") or "[]")
        except ValueError:
            docs = []
        if proc.returncode != 0 and not docs:
            self.errors.append({"stage": "identify", "message": "podman inspect exited %d: %s" % (
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
            self._add(self._by_id.get(fields["id"], fields["id"]), "cli:podman inspect", fields)

    def _lxc_info_pids(self):
        # type: () -> list
        """``lxc-info -pH`` for LXC containers no process told us about (last resort)."""
        self._lxc_info_done = True
        binary = _which("lxc-info")
        keys = []
        if binary is None:
            return keys
        for key in sorted(k for k in self._records if k.startswith("lxc:")):
            merged = self._merged(key)
            if merged.get("pid"):
                continue
            argv = [binary, "-P", merged.get("lxcpath") or "/var/lib/lxc", "-n", merged.get("name") or key[4:], "-pH"]
            try:
                proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=self.timeout,
                                      check=False)
            except (OSError, subprocess.TimeoutExpired) as exc:
                self.errors.append({"stage": "identify", "message": "lxc-info: %s" % exc})
                continue
            self.cli_calls.append("cli:lxc-info")
            text = proc.stdout.decode("ascii", "replace").strip()
            if proc.returncode == 0 and text.isdigit():
                self._add(key, "cli:lxc-info", {"pid": int(text)})
                keys.append(key)
        return keys

    # -- merge and result -------------------------------------------------------------------

    def _merged(self, key):
        # type: (str) -> dict
        """One container's fields: higher-ranked sources first, first value wins; ``sources``."""
        rec = self._records.get(key)
        if rec is None:
            return {}
        out = {"sources": []}
        for rank, source, fields in sorted(rec["parts"], key=lambda part: -part[0]):
            out["sources"].append(source)
            for name, value in fields.items():
                if name not in out or out[name] in ({}, [], ""):
                    out[name] = value
        return out

    def _requested(self, merged, key):
        # type: (dict, str) -> tuple
        """(requested, source, defaults): the most complete sysctl list any source had — the
        OCI bundle holds what the runtime applied, Docker's hostconfig only the user's."""
        best = None
        user = None
        for _rank, source, fields in self._records[key]["parts"]:
            req = fields.get("requested")
            if not isinstance(req, dict):
                continue
            if source.endswith("/config.v2.json") or source.startswith("api:"):
                user = req
            if best is None or len(req) > len(best[0]):
                best = (req, fields.get("requested_source") or source.split(":", 1)[-1])
        if best is None:
            return {}, None, None
        if user is None and merged.get("user_sysctls") is not None:
            user = dict((k, None) for k in merged["user_sysctls"])
        if user is None and merged.get("runtime") in ("runc", "lxc"):
            user = best[0]  # a bare bundle or an LXC config is written by the user: no defaults
        defaults = None if user is None else sorted(k for k in best[0] if k not in user)
        return dict(best[0]), best[1], defaults

    def _build(self, matches, errors):
        # type: (dict, list) -> dict
        result = {
            "identity": {"runtime": "unknown", "id": None, "name": None, "image": None, "pod_name": None,
                         "pod_namespace": None, "netns_name": None, "labels": {}, "sources": []},
            "requested": {}, "requested_source": None, "requested_defaults": None,
            "host_network": None, "host_ipc": None, "host_uts": None, "errors": errors,
        }
        if not matches:
            return result

        def order(key):
            strength, _sources = matches[key]
            return (strength, RANK.get(self._merged(key).get("runtime") or "unknown", 0))
        key = max(sorted(matches), key=order)
        self._reported.add(key)
        merged = self._merged(key)
        identity = result["identity"]
        for name in IDENTITY_FIELDS:
            if merged.get(name) is not None:
                identity[name] = merged[name]
        identity["runtime"] = merged.get("runtime") or "unknown"
        if identity["name"] is None and identity["runtime"] == "runc":
            identity["name"] = identity["id"]  # runc knows containers by id only
        identity["labels"] = dict(merged.get("labels") or {})
        identity["sources"] = list(matches[key][1]) + merged["sources"]
        for other in sorted(matches):
            if other != key:
                identity["sources"].append("also:%s" % other)
        requested, source, defaults = self._requested(merged, key)
        if identity["pod_name"] and not requested and merged.get("sandbox_id"):
            # Kubernetes puts pod sysctls on the sandbox; the app containers join its netns.
            sandbox = self._merged(self._by_id.get(merged["sandbox_id"], ""))
            if sandbox:
                requested, source, defaults = self._requested(sandbox, self._by_id[merged["sandbox_id"]])
        result["requested"], result["requested_source"], result["requested_defaults"] = requested, source, defaults
        for flag in ("host_network", "host_ipc", "host_uts"):
            result[flag] = merged.get(flag)
        result["errors"] = errors + list(self._records[key]["errors"])
        return result
