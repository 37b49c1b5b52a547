# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure parsers for container runtime metadata found on the host.

Each function takes text or decoded JSON that the runtime itself wrote on the host (state
directories, OCI bundles, daemon command lines, cgroup paths) and returns a plain ``dict`` of
the fields :mod:`runtimes` merges into an identity. No I/O here, so every parser is unit-tested
on recorded metadata (``tests/unit/fixtures/runtimes``). Target side: standard library only,
Python >= 3.8.

A parsed *record* may hold: ``runtime``, ``id``, ``name``, ``image``, ``pod_name``,
``pod_namespace``, ``labels``, ``pid``, ``pid_start``, ``requested`` (sysctls),
``requested_defaults`` (keys the runtime added on its own), ``host_network``, ``host_ipc``,
``host_uts``, ``sandbox_id``, ``bundle``. Missing means unknown.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

RUNTIMES = ("docker", "podman", "containerd", "cri-o", "lxc", "systemd-nspawn", "netns", "runc", "unknown")

_HEX64 = r"[0-9a-f]{64}"
_POD_UID = r"[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}"

# (runtime, pattern, what group 1 is). Applied to each cgroup path of a process; a runtime
# cannot move its containers out of these names without breaking its own tooling.
CGROUP_PATTERNS = (
    ("docker", re.compile(r"(?:^|/)docker-(%s)\.scope(?:/|$)" % _HEX64), "id"),         # systemd driver
    ("docker", re.compile(r"(?:^|/)docker/(%s)(?:/|$)" % _HEX64), "id"),                # cgroupfs driver
    ("podman", re.compile(r"(?:^|/)libpod-(%s)(?:\.scope)?(?:/|$)" % _HEX64), "id"),    # both drivers
    ("cri-o", re.compile(r"(?:^|/)crio-(%s)(?:\.scope)?(?:/|$)" % _HEX64), "id"),
    ("containerd", re.compile(r"(?:^|/)cri-containerd-(%s)\.scope(?:/|$)" % _HEX64), "id"),
    ("lxc", re.compile(r"(?:^|/)lxc\.payload[./]([^/]+)"), "name"),                      # LXC >= 4
    ("lxc", re.compile(r"(?:^|/)lxc/([^/]+)"), "name"),                                  # LXC < 4
    ("systemd-nspawn", re.compile(r"(?:^|/)machine-([^/]+)\.scope(?:/|$)"), "name"),
    ("systemd-nspawn", re.compile(r"(?:^|/)systemd-nspawn@([^/]+)\.service(?:/|$)"), "name"),
)
# Kubernetes with the cgroupfs driver names neither runtime nor scope: /kubepods/<qos>/pod<uid>/<id>.
_KUBEPODS = re.compile(r"(?:^|/)kubepods\b")
_K8S_POD = re.compile(r"pod(%s)(?:\.slice)?(?:/|$)" % _POD_UID)
# Scopes named by a runtime are matched above; what is left is the bare id (cgroupfs driver).
_K8S_CONTAINER = re.compile(r"pod%s(?:\.slice)?/(%s)(?:/|$)" % (_POD_UID, _HEX64))
_SYSTEMD_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")


def unescape_systemd(name):
    # type: (str) -> str
    """systemd unit names escape ``-`` and other bytes as ``\\xNN`` (``foo\\x2dbar``)."""
    return _SYSTEMD_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), name)


def cgroup_hints(paths):
    # type: (list) -> list
    """What cgroup paths say about the process: ``[{runtime, id|name, path, pod_uid?}]``.

    One hint per distinct (runtime, id/name); the first path that gave it is kept as evidence.
    A Kubernetes path without a runtime-specific scope gives runtime ``None`` and the id.
    """
    hints = []
    seen = set()
    for path in paths:
        pod = _K8S_POD.search(path) if _KUBEPODS.search(path) else None
        for runtime, pattern, group in CGROUP_PATTERNS:
            match = pattern.search(path)
            if not match:
                continue
            value = match.group(1)
            if runtime == "systemd-nspawn":
                value = unescape_systemd(value)
            if (runtime, value) in seen:
                break
            seen.add((runtime, value))
            hint = {"runtime": runtime, group: value, "path": path}
            if pod:
                hint["pod_uid"] = pod.group(1).replace("_", "-")
            hints.append(hint)
            break
        else:
            bare = _K8S_CONTAINER.search(path) if pod else None
            if bare and (None, bare.group(1)) not in seen:
                seen.add((None, bare.group(1)))
                hints.append({"runtime": None, "id": bare.group(1), "path": path,
                              "pod_uid": pod.group(1).replace("_", "-")})
    return hints


# ---------------------------------------------------------------------------------------------
# Command lines of runtime processes (read from the host's /proc/PID/cmdline)
# ---------------------------------------------------------------------------------------------

def cli_options(args, with_value, repeated=()):
    # type: (list, dict, tuple) -> dict
    """Options of a Go/getopt style command line.

    ``with_value`` maps every spelling that takes a value (``-n``, ``--name``, Go's ``-name``)
    to a result key; ``--opt=value`` and ``--opt value`` both work. Keys in ``repeated``
    collect lists. Options not in ``with_value`` are flags and are skipped.
    """
    out = {}
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, value = arg.partition("=")
        key = with_value.get(name) if arg.startswith("-") else None
        if key is not None:
            if not eq:
                if i + 1 >= len(args):
                    break
                value = args[i + 1]
                i += 1
            if key in repeated:
                out.setdefault(key, []).append(value)
            else:
                out[key] = value
        i += 1
    return out


def _spellings(table):
    # type: (dict) -> dict
    """``{"--name": key}`` -> also ``-name`` (Go's flag package accepts both)."""
    out = dict(table)
    for flag, key in table.items():
        if flag.startswith("--"):
            out.setdefault(flag[1:], key)
    return out


_DOCKERD = _spellings({"--data-root": "data_root", "-g": "data_root", "--graph": "data_root",
                       "--exec-root": "exec_root", "-H": "hosts", "--host": "hosts",
                       "--pidfile": "pidfile", "-p": "pidfile", "--config-file": "config_file",
                       "--containerd": "containerd"})


def parse_dockerd_cmdline(args):
    # type: (list) -> dict
    """``dockerd`` argv -> ``{data_root, exec_root, sockets: [...], pidfile, config_file}``."""
    opts = cli_options(args[1:], _DOCKERD, repeated=("hosts",))
    sockets = []
    for host in opts.pop("hosts", []):
        if host.startswith("unix://"):
            sockets.append(host[len("unix://"):])
        elif host.startswith("fd://"):
            sockets.append("/run/docker.sock")  # socket activation: systemd's docker.socket
    opts["sockets"] = sockets
    return opts


def parse_docker_daemon_json(doc):
    # type: (dict) -> dict
    """``/etc/docker/daemon.json`` -> the same keys as :func:`parse_dockerd_cmdline`."""
    out = {}
    if not isinstance(doc, dict):
        return out
    for src, dst in (("data-root", "data_root"), ("graph", "data_root"), ("exec-root", "exec_root"),
                     ("pidfile", "pidfile")):
        if isinstance(doc.get(src), str):
            out[dst] = doc[src]
    hosts = doc.get("hosts") if isinstance(doc.get("hosts"), list) else []
    out["sockets"] = [h[len("unix://"):] for h in hosts if isinstance(h, str) and h.startswith("unix://")]
    return out


_SHIM = _spellings({"--namespace": "namespace", "--id": "id", "--address": "address",
                    "--workdir": "workdir", "--runtime-root": "runtime_root", "--bundle": "bundle"})


def parse_shim_cmdline(args):
    # type: (list) -> dict
    """``containerd-shim-runc-v2 -namespace moby -id ID -address SOCK`` -> its options."""
    return cli_options(args[1:], _SHIM)


_CONMON = {"-c": "id", "--cid": "id", "-u": "uuid", "--cuuid": "uuid", "-n": "name", "--name": "name",
           "-b": "bundle", "--bundle": "bundle", "-p": "pidfile", "--container-pidfile": "pidfile",
           "-r": "runtime", "--runtime": "runtime", "-P": "conmon_pidfile", "--conmon-pidfile": "conmon_pidfile",
           "--exit-command": "exit_command", "--exit-command-arg": "exit_args", "-l": "log_path",
           "--log-path": "log_path", "--runtime-arg": "runtime_args", "--socket-dir-path": "socket_dir",
           "--exit-dir": "exit_dir", "--persist-dir": "persist_dir", "--log-level": "log_level",
           "-i": None, "--stdin": None}


def parse_conmon_cmdline(args):
    # type: (list) -> dict
    """``conmon`` argv (podman's or CRI-O's) -> id, name, bundle, pidfile and, for podman, the
    storage ``root``/``runroot`` it passes to its exit command."""
    table = dict((k, v) for k, v in _CONMON.items() if v)
    opts = cli_options(args[1:], table, repeated=("exit_args", "runtime_args"))
    exit_args = opts.pop("exit_args", [])
    if opts.get("exit_command"):
        # podman passes its global options to ``podman container cleanup`` one by one.
        tail = cli_options(exit_args, {"--root": "root", "--runroot": "runroot", "--runtime": "oci_runtime",
                                       "--cgroup-manager": "cgroup_manager", "--tmpdir": "tmpdir"})
        opts.update(tail)
        opts["manager"] = "podman" if opts["exit_command"].rsplit("/", 1)[-1] == "podman" else None
    return opts


_NSPAWN = {"-D": "directory", "--directory": "directory", "-i": "image", "--image": "image",
           "-M": "machine", "--machine": "machine", "--network-namespace-path": "netns_path",
           "-u": "user", "--user": "user", "--register": "register"}


def parse_nspawn_cmdline(args):
    # type: (list) -> dict
    """``systemd-nspawn`` argv -> the machine ``name`` (``-M``, else the basename of ``-D``/``-i``
    as nspawn derives it), ``directory``/``image``, ``private_network`` and ``host_network``."""
    opts = cli_options(args[1:], _NSPAWN)
    name = opts.get("machine")
    if not name:
        source = (opts.get("directory") or opts.get("image") or "").rstrip("/")
        name = source.rsplit("/", 1)[-1] or None
        if name and opts.get("image") and "." in name:
            name = name.split(".", 1)[0]  # foo.raw -> foo
    flags = set(a.split("=", 1)[0] for a in args[1:] if a.startswith("-"))
    private = bool(flags & {"--private-network", "-n", "--network-veth", "--network-interface",
                            "--network-macvlan", "--network-ipvlan", "--network-bridge",
                            "--network-zone", "--port", "-p", "--network-namespace-path"})
    return {"name": name, "directory": opts.get("directory"), "image": opts.get("image"),
            "private_network": private, "host_network": not private}


def parse_lxc_monitor_cmdline(args):
    # type: (list) -> object
    """The process above an LXC container's init -> ``{lxcpath, name}`` or ``None``.

    ``lxc-start -d`` forks a monitor that rewrites its argv to ``[lxc monitor] LXCPATH NAME``
    (one string); ``lxc-start -F`` stays the parent itself, with its own options.
    """
    text = " ".join(args)
    prefix = "[lxc monitor] "
    if text.startswith(prefix):
        path, _sep, name = text[len(prefix):].rstrip().rpartition(" ")
        if not path or not name:
            return None
        return {"lxcpath": path, "name": name}
    if args and args[0].rsplit("/", 1)[-1] == "lxc-start":
        opts = cli_options(args[1:], {"-n": "name", "--name": "name", "-P": "lxcpath", "--lxcpath": "lxcpath"})
        if opts.get("name"):
            return {"lxcpath": opts.get("lxcpath") or "/var/lib/lxc", "name": opts["name"]}
    return None


# ---------------------------------------------------------------------------------------------
# Runtime state files
# ---------------------------------------------------------------------------------------------

def _str_dict(value):
    # type: (object) -> dict
    """A JSON object of strings, or ``{}`` (runtimes write ``null`` for empty maps)."""
    if not isinstance(value, dict):
        return {}
    return dict((str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in value.items())


def _mode_is_host(mode):
    # type: (object) -> object
    """Docker's NetworkMode/IpcMode/UTSMode: ``host`` is the host's namespace."""
    if not isinstance(mode, str):
        return None
    return mode == "host"


def parse_docker_container(doc, hostconfig=None):
    # type: (dict, object) -> dict
    """Docker's ``config.v2.json`` (with ``hostconfig.json``) or a ``docker inspect`` /
    ``GET /containers/ID/json`` document -> a record. ``hostconfig`` defaults to the document's
    own ``HostConfig`` (inspect output carries it inline)."""
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    cid = doc.get("ID") or doc.get("Id")
    if not isinstance(cid, str):
        raise ValueError("no container ID")
    config = doc.get("Config") if isinstance(doc.get("Config"), dict) else {}
    state = doc.get("State") if isinstance(doc.get("State"), dict) else {}
    if hostconfig is None:
        hostconfig = doc.get("HostConfig")
    hostconfig = hostconfig if isinstance(hostconfig, dict) else {}
    pid = state.get("Pid")
    running = bool(state.get("Running"))
    name = doc.get("Name")
    image = config.get("Image") or doc.get("Image")
    record = {
        "runtime": "docker",
        "id": cid,
        "name": name.lstrip("/") or None if isinstance(name, str) else None,
        "image": image if isinstance(image, str) and image else None,
        "image_id": doc.get("Image") if isinstance(doc.get("Image"), str) else None,
        "labels": _str_dict(config.get("Labels")),
        "pid": pid if running and isinstance(pid, int) and pid > 0 else None,
        "running": running,
        "requested": _str_dict(hostconfig.get("Sysctls")),
        "host_network": _mode_is_host(hostconfig.get("NetworkMode")),
        "host_ipc": _mode_is_host(hostconfig.get("IpcMode")),
        "host_uts": _mode_is_host(hostconfig.get("UTSMode")),
        "privileged": hostconfig.get("Privileged") if isinstance(hostconfig.get("Privileged"), bool) else None,
    }
    sandbox = doc["NetworkSettings"].get("SandboxKey") if isinstance(doc.get("NetworkSettings"), dict) else None
    if isinstance(sandbox, str) and sandbox:
        record["sandbox_key"] = sandbox
    return record


def parse_podman_inspect(doc):
    # type: (dict) -> dict
    """One element of ``podman inspect`` output -> a record (podman 4.3 has no
    ``HostConfig.Sysctls``: the sysctls come from the OCI config)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("Id"), str):
        raise ValueError("not a podman inspect object")
    config = doc.get("Config") if isinstance(doc.get("Config"), dict) else {}
    state = doc.get("State") if isinstance(doc.get("State"), dict) else {}
    pid = state.get("Pid")
    record = {
        "runtime": "podman",
        "id": doc["Id"],
        "name": doc.get("Name") or None,
        "image": doc.get("ImageName") or config.get("Image") or None,
        "labels": _str_dict(config.get("Labels")),
        "pid": pid if isinstance(pid, int) and pid > 0 else None,
        "pod_id": doc.get("Pod") or None,
    }
    sysctls = (doc.get("HostConfig") or {}).get("Sysctls") if isinstance(doc.get("HostConfig"), dict) else None
    if isinstance(sysctls, dict) and sysctls:
        record["requested"] = _str_dict(sysctls)
    return record


def parse_storage_containers(doc):
    # type: (object) -> dict
    """containers/storage ``containers.json`` (podman, CRI-O, buildah) -> ``{id: record}`` with
    ``name`` and ``image`` (podman keeps the image name in the ``metadata`` string)."""
    if not isinstance(doc, list):
        raise ValueError("not a JSON list")
    out = {}
    for item in doc:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            continue
        meta = {}
        if isinstance(item.get("metadata"), str):
            try:
                meta = json.loads(item["metadata"])
            except ValueError:
                meta = {}
        meta = meta if isinstance(meta, dict) else {}
        names = item.get("names") if isinstance(item.get("names"), list) else []
        out[item["id"]] = {
            "id": item["id"],
            "name": meta.get("name") or (names[0] if names else None),
            "image": meta.get("image-name") or None,
            "image_id": item.get("image") or meta.get("image-id") or None,
            # CRI-O stores pod names in the metadata as well.
            "pod_name": meta.get("pod-name") or None,
        }
    return out


_NS_TYPES = {"network": "net", "ipc": "ipc", "uts": "uts", "pid": "pid", "user": "user",
             "mount": "mnt", "cgroup": "cgroup",
             # libcontainer's state.json spells them NEWNET, ...
             "NEWNET": "net", "NEWIPC": "ipc", "NEWUTS": "uts", "NEWPID": "pid", "NEWUSER": "user",
             "NEWNS": "mnt", "NEWCGROUP": "cgroup"}


def oci_namespaces(entries):
    # type: (object) -> dict
    """OCI ``linux.namespaces`` (or libcontainer's ``namespaces``) -> ``{type: path}``;
    ``""`` is a new namespace, a path is one joined. A type that is absent is the caller's."""
    out = {}
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("type") in _NS_TYPES:
            out[_NS_TYPES[entry["type"]]] = entry.get("path") or ""
    return out


def host_flags(namespaces, same_as_host=None):
    # type: (dict, object) -> dict
    """``host_network``/``host_ipc``/``host_uts`` from :func:`oci_namespaces` output.

    Absent: the runtime did not unshare it, so the container has the host's (True). Own: False.
    Joined by path: ``same_as_host(path, type)`` decides (None when it cannot tell), so a pod
    joining its sandbox's netns is not mistaken for the host's.
    """
    out = {}
    for key, nstype in (("host_network", "net"), ("host_ipc", "ipc"), ("host_uts", "uts")):
        if nstype not in namespaces:
            out[key] = True
        elif namespaces[nstype] == "":
            out[key] = False
        else:
            out[key] = same_as_host(namespaces[nstype], nstype) if same_as_host else None
    return out


def classify_annotations(annotations):
    # type: (dict) -> dict
    """What the OCI annotations say about the container's manager and Kubernetes identity.

    - podman: ``io.container.manager=libpod`` (podman also writes some ``io.kubernetes.cri-o.*``
      keys, so this is checked first);
    - CRI-O: ``io.container.manager=cri-o`` or ``io.kubernetes.cri-o.ContainerType``;
    - containerd's CRI plugin: ``io.kubernetes.cri.*``;
    - anything else: the OCI image annotations, if present.
    """
    a = annotations if isinstance(annotations, dict) else {}
    out = {}
    manager = a.get("io.container.manager")
    if manager == "libpod":
        out["runtime"] = "podman"
    elif manager == "cri-o" or "io.kubernetes.cri-o.ContainerType" in a:
        sandbox = a.get("io.kubernetes.cri-o.ContainerType") == "sandbox"
        out.update({
            "runtime": "cri-o",
            "name": "POD" if sandbox else (a.get("io.kubernetes.container.name") or a.get("io.kubernetes.cri-o.ContainerName")),
            "pod_name": a.get("io.kubernetes.pod.name"),
            "pod_namespace": a.get("io.kubernetes.pod.namespace"),
            "image": a.get("io.kubernetes.cri-o.ImageName") or a.get("io.kubernetes.cri-o.Image"),
            "sandbox_id": a.get("io.kubernetes.cri-o.SandboxID"),
            "container_type": "sandbox" if sandbox else "container",
        })
        labels = a.get("io.kubernetes.cri-o.Labels")
        if isinstance(labels, str):
            try:
                out["labels"] = _str_dict(json.loads(labels))
            except ValueError:
                pass
    elif "io.kubernetes.cri.container-type" in a:
        sandbox = a.get("io.kubernetes.cri.container-type") == "sandbox"
        out.update({
            "runtime": "containerd",
            "name": "POD" if sandbox else a.get("io.kubernetes.cri.container-name"),
            "pod_name": a.get("io.kubernetes.cri.sandbox-name"),
            "pod_namespace": a.get("io.kubernetes.cri.sandbox-namespace"),
            "image": a.get("io.kubernetes.cri.image-name"),
            "sandbox_id": a.get("io.kubernetes.cri.sandbox-id"),
            "container_type": "sandbox" if sandbox else "container",
        })
    image = a.get("org.opencontainers.image.ref.name") or a.get("org.opencontainers.image.base.name")
    if image and not out.get("image"):
        out["image"] = image
    return dict((k, v) for k, v in out.items() if v is not None)


def parse_oci_config(doc):
    # type: (dict) -> dict
    """An OCI runtime ``config.json`` (the bundle the runtime started) -> ``requested``
    (``linux.sysctl``), ``annotations``, ``namespaces`` (:func:`oci_namespaces`), ``hostname``,
    ``cgroups_path`` and what :func:`classify_annotations` reads from the annotations."""
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    linux = doc.get("linux") if isinstance(doc.get("linux"), dict) else {}
    annotations = _str_dict(doc.get("annotations"))
    out = classify_annotations(annotations)
    out.update({
        "requested": _str_dict(linux.get("sysctl")),
        "annotations": annotations,
        "namespaces": oci_namespaces(linux.get("namespaces")),
        "hostname": doc.get("hostname") if isinstance(doc.get("hostname"), str) else None,
        "cgroups_path": linux.get("cgroupsPath") if isinstance(linux.get("cgroupsPath"), str) else None,
    })
    return out


def parse_runc_state(doc):
    # type: (dict) -> dict
    """libcontainer's ``state.json`` (runc's ``--root``/ID/state.json) -> ``id``, ``pid``,
    ``pid_start`` (clock ticks after boot, to tell a reused pid), ``bundle``, ``requested``,
    ``namespaces`` (with the paths of joined ones), ``hostname`` and image annotations from
    its labels."""
    if not isinstance(doc, dict) or not isinstance(doc.get("id"), str):
        raise ValueError("not a runc state object")
    config = doc.get("config") if isinstance(doc.get("config"), dict) else {}
    labels = {}
    for label in config.get("labels") or []:
        if isinstance(label, str) and "=" in label:
            key, value = label.split("=", 1)
            labels[key] = value
    bundle = labels.pop("bundle", None)
    pid = doc.get("init_process_pid")
    out = classify_annotations(labels)
    out.update({
        "runtime": "runc",
        "id": doc["id"],
        "pid": pid if isinstance(pid, int) and pid > 0 else None,
        "pid_start": doc.get("init_process_start") if isinstance(doc.get("init_process_start"), int) else None,
        "bundle": bundle,
        "requested": _str_dict(config.get("sysctl")),
        "namespaces": oci_namespaces(config.get("namespaces")),
        "hostname": config.get("hostname") or None,
        "annotations": labels,
    })
    return out


_TEMPLATE_COMMENT = re.compile(r"^#\s*Template used to create this container:\s*(\S+)")
_TEMPLATE_PARAMS = re.compile(r"^#\s*Parameters passed to the template:\s*(.*)$")


def parse_lxc_config(text):
    # type: (str) -> dict
    """An LXC container ``config`` -> ``requested`` (``lxc.sysctl.*``), ``hostname``
    (``lxc.uts.name``), ``net_types``, the ``host_*`` flags, ``includes``, ``rootfs`` and the
    ``image`` lxc-create recorded in its comments (``lxc-busybox``, ``debian:bookworm``).

    LXC reads ``key = value`` lines; later lines win for single-valued keys; ``lxc.net.N.type =
    none`` shares the host's network namespace; ``lxc.namespace.keep`` keeps host namespaces.
    """
    entries = []
    template = None
    params = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            match = _TEMPLATE_COMMENT.match(stripped)
            if match:
                template = match.group(1).rsplit("/", 1)[-1]
            match = _TEMPLATE_PARAMS.match(stripped)
            if match:
                params = match.group(1)
            continue
        key, sep, value = stripped.partition("=")
        if sep:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]  # lxc-create's templates quote some values
            entries.append((key.strip(), value))
    single = dict(entries)
    # "lxc.sysctl. = 1" names no key (LXC refuses the line): not a request for "".
    requested = dict((k[len("lxc.sysctl."):], v) for k, v in entries
                     if k.startswith("lxc.sysctl.") and k[len("lxc.sysctl."):].strip(".") and v)
    net_types = dict((k, v) for k, v in entries if re.match(r"^lxc\.net\.\d+\.type$", k))
    keep = set(single.get("lxc.namespace.keep", "").split())
    types = [net_types[k] for k in sorted(net_types)]
    if "net" in keep or "none" in types:
        host_network = True
    elif types:
        host_network = False
    else:
        host_network = None  # nothing configured here: depends on included files
    image = None
    if params:
        opts = cli_options(params.split(), {"-d": "dist", "--dist": "dist", "-r": "release", "--release": "release"})
        if opts.get("dist"):
            image = "%s:%s" % (opts["dist"], opts.get("release", "latest"))
    if image is None and template:
        image = template
    return {
        "runtime": "lxc",
        "requested": requested,
        "hostname": single.get("lxc.uts.name") or None,
        "net_types": types,
        "host_network": host_network,
        "host_ipc": True if "ipc" in keep else (False if single else None),
        "host_uts": True if "uts" in keep else (False if single else None),
        "includes": [v for k, v in entries if k == "lxc.include"],
        "rootfs": single.get("lxc.rootfs.path") or None,
        "image": image,
    }


def parse_machine_file(text):
    # type: (str) -> dict
    """``/run/systemd/machines/NAME`` (systemd-machined) -> ``{name, pid, class, service, root}``."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#"):
            values[key.strip()] = value.strip()
    try:
        leader = int(values.get("LEADER", ""))
    except ValueError:
        leader = None
    return {"name": values.get("NAME"), "pid": leader, "class": values.get("CLASS"),
            "service": values.get("SERVICE"), "root": values.get("ROOT"), "scope": values.get("SCOPE")}


def parse_containerd_toml_paths(text):
    # type: (str) -> dict
    """The top-level ``root`` and ``state`` of a containerd config (no TOML parser needed:
    both are plain ``key = "value"`` lines before the first table)."""
    out = {}
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            break
        match = re.match(r'^(root|state)\s*=\s*"([^"]*)"', stripped)
        if match and match.group(2):
            out[match.group(1)] = match.group(2)
    return out
