# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the host persists: sysctl.d files in systemd-sysctl's order.

systemd-sysctl (sysctl.d(5)) reads ``*.conf`` from ``/etc/sysctl.d``, ``/run/sysctl.d``,
``/usr/local/lib/sysctl.d`` and ``/usr/lib/sysctl.d`` (``/lib/sysctl.d`` on split-/usr systems).
A file name in an earlier directory masks the same name in a later one; the surviving files
are applied sorted by file name, and a later assignment wins. ``/etc/sysctl.conf`` is applied
last (as ``sysctl --system`` does; Debian links it as ``/etc/sysctl.d/99-sysctl.conf``, counted
once). Target side: standard library only, Python >= 3.8.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fnmatch
import os
import stat

from ansible_collections.nsguard.sysctl.plugins.module_utils import procinfo, procsys, sysctl_names
from ansible_collections.nsguard.sysctl.plugins.module_utils.runtime_paths import CONTAINER_FS_DIRS, DEFAULT_PATHS, state_dirs
from ansible_collections.nsguard.sysctl.plugins.module_utils.safefile import UnsafeFile, read_regular, resolve_links

SYSCTL_D_DIRS = ("/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d")
SYSCTL_CONF = "/etc/sysctl.conf"
MAX_FILE_BYTES = 1024 * 1024


def parse_sysctl_text(text, source):
    # type: (str, str) -> tuple
    """Parse one file. Returns ``(assignments, errors)``.

    ``assignments``: list of ``{key, value, file, line, ignore_errors, pattern}``;
    ``errors``: list of ``{file, line, message}`` for lines that are not ``key = value``.
    """
    assignments = []
    errors = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if "=" not in stripped and stripped.startswith("-") and stripped[1:].strip():
            # sysctl.d(5): "-key" alone excludes that key from the glob assignments.
            assignments.append({"key": sysctl_names.normalize_key(stripped[1:]), "value": None, "file": source,
                                "line": number, "ignore_errors": True, "pattern": False, "exclude": True})
            continue
        if "=" not in stripped:
            errors.append({"file": source, "line": number,
                           "message": "line %d of %s is not 'key = value': %r" % (number, source, stripped[:80])})
            continue
        raw_key, value = stripped.split("=", 1)
        raw_key = raw_key.strip()
        ignore_errors = raw_key.startswith("-")
        if ignore_errors:
            raw_key = raw_key[1:].strip()
        if not raw_key:
            errors.append({"file": source, "line": number,
                           "message": "line %d of %s has an empty key" % (number, source)})
            continue
        key = sysctl_names.normalize_key(raw_key)  # sysctl.d accepts a.b.c and a/b/c
        assignments.append({
            "key": key,
            "value": value.strip(),
            "file": source,
            "line": number,
            "ignore_errors": ignore_errors,
            "pattern": any(c in key for c in "*?["),
            "exclude": False,
        })
    return assignments, errors


def refused_roots(runtime_paths=None, proc="/proc"):
    # type: (object, str) -> tuple
    """Where a sysctl.d link must not lead, because a container's filesystem lies there:

    - ``/proc``: ``/proc/PID/root/...`` is a container's filesystem as the host sees it;
    - the runtimes' state directories (:func:`runtime_paths.state_dirs` of :data:`runtime_paths.DEFAULT_PATHS`
      and of ``runtime_paths``, the module option of the same name) and
      :data:`runtime_paths.CONTAINER_FS_DIRS`: ``/var/lib/docker/overlay2/*/merged``, containerd's task
      bundles and snapshots, containers/storage, LXC's rootfs. Also as they resolve (a data root
      moved by a symbolic link is reached under its target's name);
    - the root directories of processes that run chrooted (:func:`procinfo.process_roots`): a
      container without a mount namespace of its own, wherever its files are.
    """
    roots = ["/proc"] + state_dirs(DEFAULT_PATHS, runtime_paths) + list(CONTAINER_FS_DIRS)
    roots += [os.path.realpath(root) for root in roots]  # lstat/readlink only: nothing is opened
    roots += procinfo.process_roots(proc)
    return tuple(sorted(set(roots)))


def ordered_files(dirs=SYSCTL_D_DIRS, sysctl_conf=SYSCTL_CONF, errors=None, refuse=None):
    # type: (tuple, str, object, object) -> list
    """The files systemd-sysctl would apply, in order (masking by name, sorted by name), each
    as the path it resolves to -- the name is listed, the target is what is read.

    Links are followed (Debian's ``99-sysctl.conf -> ../sysctl.conf``, masks to ``/dev/null``),
    but resolved by :func:`safefile.resolve_links` one component at a time, and refused when the
    way leads under one of ``refuse`` (default: :func:`refused_roots`, where containers' files
    are). A refused file, a FIFO, a device or a directory named ``*.conf`` is skipped
    (systemd-sysctl skips non-regular files too) with an error in ``errors`` naming it; a mask
    (``/dev/null``) and a dangling link are skipped silently."""
    if refuse is None:
        refuse = refused_roots()
    chosen = {}
    for directory in dirs:
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            if name.endswith(".conf") and name not in chosen:
                chosen[name] = os.path.join(directory, name)
    files = [chosen[name] for name in sorted(chosen)]
    seen = set()
    out = []
    for path in files + ([sysctl_conf] if sysctl_conf else []):
        try:
            real = resolve_links(path, refuse=refuse)
            mode = os.stat(real).st_mode
        except UnsafeFile as exc:
            _note(errors, path, "%s: %s; skipped" % (path, exc.strerror))
            continue
        except OSError:
            continue
        if real == "/dev/null" or real in seen:
            continue
        if not stat.S_ISREG(mode):
            _note(errors, path, "%s: not a regular file (%s); skipped" % (
                path, "-> %s" % real if real != path else "FIFO, device or directory"))
            continue
        seen.add(real)
        out.append(path)
    return out


def _note(errors, path, message):
    # type: (object, str, str) -> None
    if errors is not None:
        errors.append({"file": path, "line": None, "message": message})


def resolve(assignments, host_keys=()):
    # type: (list, object) -> dict
    """Apply assignments in order: ``{key: {value, file, line, ignore_errors}}``.

    Glob keys (systemd >= 246) expand against the host's keys; a ``-key`` line without a value
    excludes that key from every glob (sysctl.d(5)).
    """
    result = {}
    excluded = set()
    # sysctl.d(5): "Keys for which an explicit pattern exists will be excluded from any glob
    # matching" -- wherever the explicit line is, before or after the glob.
    explicit = set(item["key"] for item in assignments if not item["pattern"])
    for item in assignments:
        key = item["key"]
        entry = {k: item[k] for k in ("value", "file", "line", "ignore_errors")}
        if item.get("exclude"):
            excluded.add(key)
            if result.get(key, {}).get("pattern"):
                result.pop(key, None)
            continue
        if item["pattern"]:
            for name in host_keys:
                if name not in excluded and name not in explicit and fnmatch.fnmatchcase(name, key):
                    result[name] = dict(entry, pattern=key)
            continue
        result[key] = entry
    return result


def read_persisted(dirs=SYSCTL_D_DIRS, sysctl_conf=SYSCTL_CONF, host_keys=(), runtime_paths=None):
    # type: (tuple, str, object, object) -> dict
    """``{"files": [...], "keys": {...}, "errors": [...]}`` for the host facts. ``runtime_paths``:
    more runtime directories, keyed as :data:`runtime_paths.DEFAULT_PATHS`, that no link may lead
    under (:func:`refused_roots`)."""
    assignments = []
    errors = []
    refuse = refused_roots(runtime_paths)
    files = ordered_files(dirs, sysctl_conf, errors, refuse)
    for path in files:
        try:
            # Resolved again and opened without following anything: a link swapped in since
            # ordered_files() looked is refused, a FIFO cannot block, a huge file is not read.
            real = resolve_links(path, refuse=refuse)
            raw = read_regular(real, MAX_FILE_BYTES, beneath=os.path.dirname(real))
        except UnsafeFile as exc:
            _note(errors, path, "%s: %s" % (path, exc.strerror))
            continue
        except OSError as exc:
            _note(errors, path, "cannot read %s: %s" % (path, exc.strerror))
            continue
        parsed, bad = parse_sysctl_text(raw.decode("utf-8", "replace"), path)
        assignments.extend(parsed)
        errors.extend(bad)
    return {"files": [procsys.text_safe(f) for f in files], "keys": _text_safe_keys(resolve(assignments, host_keys)),
            "errors": [dict(e, file=procsys.text_safe(e["file"]), message=procsys.text_safe(e["message"]))
                       for e in errors]}


def _text_safe_keys(keys):
    # type: (dict) -> dict
    """File names come from ``os.listdir`` and may hold undecodable bytes (see procsys.text_safe)."""
    return {k: dict(v, file=procsys.text_safe(v["file"])) for k, v in keys.items()}
