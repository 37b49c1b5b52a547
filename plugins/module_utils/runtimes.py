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

The parts: ``runtime_paths`` (the search paths), one engine module per runtime listed in
``runtime_engines`` (what each runtime's files and processes say), ``runtime_identity`` (which
record a set is, and its result), ``runtime_cli`` (the API and CLI fallbacks). This module
holds the index's state and its one way of reading host files, which the engines use.

Never read inside a container's root filesystem and never execute anything from it.
Target side: standard library only, Python >= 3.8.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

from ansible_collections.nsguard.sysctl.plugins.module_utils import (
    nsscan, procinfo, runtime_cli, runtime_engines, runtime_identity)
from ansible_collections.nsguard.sysctl.plugins.module_utils import runtimes_parse as rp
from ansible_collections.nsguard.sysctl.plugins.module_utils.runtime_paths import (
    DEFAULT_PATHS, DIR_KINDS, MAX_JSON_BYTES, state_dirs)
from ansible_collections.nsguard.sysctl.plugins.module_utils.safefile import UnsafeFile, glob_beneath, read_regular


class RuntimeIndex(object):
    """Runtime metadata of one host, read once, queried per namespace set.

    ``use_cli``: ask the runtime's API socket or CLI where the files leave a gap. ``timeout``:
    seconds for each such call. ``root``/``proc``: where the host's files and procfs are (tests
    point them at recorded trees). ``paths``: extra or replacement search paths, keyed as
    :data:`runtime_paths.DEFAULT_PATHS`; ``discover``: also learn paths from running daemons'
    command lines.

    The engine modules (``runtime_engines``) are parts of the index: they read host files only
    through its ``_glob``/``_read``/``_read_json``/``_parse_once`` (links, sizes, errors that name
    the file) and record what they found with ``_add`` and ``_extend``.
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
        rank = runtime_engines.rank(fields.get("runtime") or "unknown")
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
        """Read everything once (called by the first :meth:`identify`): every engine of
        :data:`runtime_engines.ENGINES`, in its order."""
        if self._scanned:
            return
        self._scanned = True
        self._read_host_ns()
        self._read_processes()
        if self.discover:
            self._discover_from_processes()
        for engine in runtime_engines.ENGINES:
            engine.scan(self)

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
        """Where running daemons keep state, from their command lines (host /proc only), then
        from the runtimes' settings files."""
        daemons = runtime_engines.daemon_table()
        for pid, st in sorted(self._procs.items()):
            engine = runtime_engines.daemon_engine(st["comm"], daemons)
            if engine is None:
                continue
            if not self._host_daemon(pid):
                # A process anyone can start (or a container's, or an unprivileged user's) may
                # call itself dockerd or conmon: its paths would lead us anywhere.
                continue
            engine.discover(self, pid, st["comm"])
        for read_config in runtime_engines.config_readers():
            read_config(self)

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

    def _host_flags(self, namespaces):
        # type: (dict) -> dict
        def same_as_host(path, nstype):
            try:
                return os.stat(self._host(path)).st_ino == self._host_ns[nstype]
            except (OSError, KeyError):
                return None
        return rp.host_flags(namespaces, same_as_host)

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
        metadata: those become ``errors`` entries (:mod:`runtime_identity`).
        """
        self.scan()
        return runtime_identity.identify(self, pids, init_pid, ns)

    def _merged(self, key):
        # type: (str) -> dict
        return runtime_identity.merged(self, key)

    def _ask_cli(self, runtime, cid):
        # type: (object, str) -> None
        """The runtime's API or CLI on a container only its cgroup named (:mod:`runtime_cli`)."""
        runtime_cli.ask(self, runtime, cid)
