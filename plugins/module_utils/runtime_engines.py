# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The runtime index's engines: one module per container runtime, one row each in
:data:`ENGINES`.

An engine module offers (``index`` is the :class:`runtimes.RuntimeIndex` being filled; the
engine reads host files only through it, so that its link and size rules hold):

- ``scan(index)`` (required): read the runtime's state files into records
  (``index._add(key, source, fields)``);
- ``RANKS``: ``{runtime name: rank}`` for the names its records carry (a runtime that manages
  containers, 4, outranks containerd, 3, and the OCI runtime that starts them, 2);
- ``DAEMONS`` and ``discover(index, pid, comm)``: the process names (``*`` ends a prefix) of its
  daemons, and what their command lines say (moved state paths, ancestors to remember in
  ``index._by_parent[pid] = (kind, opts, bundle)``). Only processes of the host's root in the
  host's mount and user namespaces are handed over;
- ``discover_config(index)``: settings files read after the processes (``daemon.json``);
- ``PARENTS`` and ``parent_key(index, kind, opts, bundle)``: the ancestor kinds it remembered,
  and the record key of the container below such an ancestor (or None).

Only ``scan`` is required. The modules are imported here by name, as AnsiballZ needs to see
them to ship them. Target side: standard library only, Python >= 3.8.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.nsguard.sysctl.plugins.module_utils import (
    runtime_containerd, runtime_docker, runtime_lxc, runtime_netns, runtime_nspawn, runtime_oci, runtime_storage)

# Scan order: Docker first (its exec-root adds containerd task and runc directories), the OCI
# runtimes after the managers whose bundles they run, named network namespaces last.
ENGINES = (
    runtime_docker,
    runtime_containerd,
    runtime_storage,     # podman, CRI-O
    runtime_oci,         # runc, crun
    runtime_lxc,
    runtime_nspawn,
    runtime_netns,
)


def daemon_table():
    # type: () -> tuple
    """``(exact, prefixes)``: daemon process names -> engine, and ``[(prefix, engine)]`` for the
    names that end with ``*``; made once per scan, looked up once per process."""
    exact, prefixes = {}, []
    for engine in ENGINES:
        for name in getattr(engine, "DAEMONS", ()):
            if name.endswith("*"):
                prefixes.append((name[:-1], engine))
            else:
                exact.setdefault(name, engine)
    return exact, tuple(prefixes)


def daemon_engine(comm, table=None):
    # type: (str, object) -> object
    """The engine whose daemon is called ``comm``, or None (``table``: a :func:`daemon_table`)."""
    exact, prefixes = table or daemon_table()
    engine = exact.get(comm)
    if engine is None:
        engine = next((e for prefix, e in prefixes if comm.startswith(prefix)), None)
    return engine


def parent_engine(kind):
    # type: (str) -> object
    """The engine that remembered ancestors of ``kind``, or None."""
    for engine in ENGINES:
        if kind in getattr(engine, "PARENTS", ()):
            return engine
    return None


def rank(runtime):
    # type: (object) -> int
    """How much a record of ``runtime`` counts when sources disagree (``unknown``: 0)."""
    for engine in ENGINES:
        value = getattr(engine, "RANKS", {}).get(runtime)
        if value is not None:
            return value
    return 0


def config_readers():
    # type: () -> list
    """The engines' ``discover_config``, in registry order."""
    return [engine.discover_config for engine in ENGINES if hasattr(engine, "discover_config")]
