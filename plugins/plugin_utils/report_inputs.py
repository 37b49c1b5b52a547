# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the report action keeps of one host, and the fact cache read one host at a time.

:func:`report_entry` turns a host's status, facts and lint result into the entry
``report.build_fleet`` / ``report.FleetBuilder.add_host`` reads (docs/reports.md): the facts
trimmed to what the reports show, the findings, ``partial``. :func:`cached_entry` is the whole
path of one host read from a fact cache (``source: cache``): shadowing facts refused, facts
validated and linted (``lint.lint_host``), trimmed; cached findings are never read.

:class:`FileCacheReader` streams a file-backed Ansible cache plugin (``ansible.builtin.jsonfile``
and the other ``BaseFileCacheModule`` plugins): Ansible's own ``get`` (prefix, schema-version
key, expiry, decoding), after which the plugin's in-memory copy of the host is dropped.
Reading ``hostvars`` instead keeps every host read in memory for the rest of the run (~0.5 MiB
a host at 30 sets: ~5 GiB at 10,000 hosts) and costs ~70 ms of CPU a host before our code runs.

:func:`stream_entries` yields ``(host, entry)`` in the order given, from ``jobs`` forked
workers (each reads, validates, lints and trims its hosts; only the trimmed entry comes back)
or in this process. A worker that dies (the OOM killer) costs no host: the hosts it had not
returned are done here.

Plain Python: the caller hands in the Ansible plugin object (no Ansible import here).
"""
from __future__ import annotations

import itertools
import json
import os
from collections import deque
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

from . import lint, report

__all__ = ["report_entry", "cached_entry", "deprefixed", "FileCacheReader", "stream_entries", "default_jobs"]

# below this many hosts a pool costs more than it saves (fork, pickling, one more process)
POOL_MIN_HOSTS = 64
MAX_JOBS = 8
WINDOW = 4   # chunks in flight per worker


def report_entry(status: str, message: Optional[str], facts: Any,
                 outcome: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """The report's entry for one host: ``outcome`` is its lint result (None when it was not
    linted). An unlintable result fails the host with the reason; a host that is not ``ok``
    keeps only when and which kernel (no containers or findings)."""
    entry: Dict[str, Any] = {"status": status, "message": message}
    if outcome is not None and outcome.get("unlintable"):
        entry.update(status="failed", message=str(outcome["unlintable"]))
        outcome = None
    if facts is not None and outcome is not None and entry["status"] == "ok":
        entry["facts"] = report.trim_facts(facts)
        entry["findings"] = outcome.get("findings") or []
        entry["partial"] = outcome.get("partial")
    elif facts is not None and isinstance(facts, Mapping) and entry["status"] != "unreachable":
        trimmed = report.trim_facts(facts)
        entry["facts"] = {"gathered_at": trimmed["gathered_at"], "host": trimmed["host"]}
    return entry


def deprefixed(cached: Mapping[str, Any]) -> Dict[str, Any]:
    """A host's cached facts as ``ansible_facts`` shows them (``ansible.vars.clean.namespace_facts``
    without its deep copy): ``ansible_`` prefixes removed, except ``ansible_local``. A fact cached
    as ``ansible_nsguard_sysctl_x`` shadows the same names as one cached as ``nsguard_sysctl_x``."""
    return {(key[8:] if key.startswith("ansible_") and key != "ansible_local" else key): value
            for key, value in cached.items()}


def cached_entry(host: str, cached: Optional[Mapping[str, Any]], config: lint.LintConfig, facts_var: str, *,
                 plain: bool = False) -> Dict[str, Any]:
    """One host of ``source: cache``: ``cached`` is its ``ansible_facts`` (None: not in the
    cache). With ``plain`` the facts are plain JSON data already (decoded here, not Ansible's
    wrapped values), so the lint skips its copy."""
    facts = cached.get(facts_var) if isinstance(cached, Mapping) else None
    if facts is None:
        return report_entry("unreachable", "no %s facts in the fact cache (never audited, or unreachable at "
                                           "the last audit)" % facts_var, None, None)
    outcome = lint.lint_host(facts, host, config, ansible_facts=cached, plain_facts=plain)
    return report_entry("ok", None, facts, outcome)


class FileCacheReader:
    """One host's cached facts at a time from a file-backed cache plugin, forgetting each.

    ``plugin`` is what ``cache_loader.get(C.CACHE_PLUGIN)`` returns: Ansible's wrapper
    (``_get_key`` adds the schema-version prefix, ``_decode`` reads the ``__payload__``); ``inner``
    the file plugin under it, whose ``get`` (expiry, a corrupt file removed) memoises every host
    in its ``_cache`` dict. :meth:`usable` says whether this pair can be streamed; the caller
    reads ``hostvars`` otherwise. A payload without Ansible's tagged values (no
    ``__ansible_type`` marker: what a module's facts are) decodes with ``json.loads`` alone, to
    the same data as plain Python; one with them goes through Ansible's decoder."""

    TAG_MARK = "__ansible_type"

    def __init__(self, plugin: Any, inner: Any) -> None:
        self.plugin = plugin
        self.inner = inner

    @staticmethod
    def usable(plugin: Any, inner: Any, file_cache_class: type) -> bool:
        return (isinstance(inner, file_cache_class) and isinstance(getattr(inner, "_cache", None), dict)
                and callable(getattr(plugin, "_get_key", None)) and callable(getattr(plugin, "_decode", None)))

    def __call__(self, host: str) -> Tuple[Optional[Dict[str, Any]], Optional[str], bool]:
        """(the host's ``ansible_facts``, None, plain) -- ``plain``: decoded to plain data here --;
        (None, None, False) when the cache has no live entry; (None, why, False) when the entry
        cannot be read (Ansible removes a corrupt file)."""
        try:
            wrapped = self.inner.get(self.plugin._get_key(host))
            payload = wrapped.get("__payload__") if isinstance(wrapped, Mapping) else None
            plain = isinstance(payload, str) and self.TAG_MARK not in payload
            value = json.loads(payload) if plain else self.plugin._decode(wrapped)
        except KeyError:  # not cached, or expired
            return None, None, False
        except Exception as exc:  # AnsibleError: a corrupt or unreadable entry fails this host only
            cause = exc.__cause__
            return None, "the fact cache entry cannot be read: %s%s" % (
                exc, " (%s: %s)" % (type(cause).__name__, cause) if cause else ""), False
        finally:
            self.inner._cache.clear()  # only the host just read is in it
        if not isinstance(value, Mapping):
            return None, "the fact cache entry is a %s, not a mapping of facts" % type(value).__name__, False
        return deprefixed(value), None, plain


def default_jobs() -> int:
    """The CPUs this process may run on, at most :data:`MAX_JOBS`."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(MAX_JOBS, cpus))


# What a forked worker runs, set before the pool forks (so the workers inherit it, unpickled).
_WORK: Optional[Callable[[str], Dict[str, Any]]] = None


def _work_chunk(hosts: List[str]) -> List[Dict[str, Any]]:
    assert _WORK is not None
    return [_WORK(host) for host in hosts]


def _safe(work: Callable[[str], Dict[str, Any]]) -> Callable[[str], Dict[str, Any]]:
    def run(host: str) -> Dict[str, Any]:
        try:
            return work(host)
        except Exception as exc:  # noqa: BLE001 - one host's surprise must not cost the others
            return report_entry("failed", "cannot be read from the fact cache: %s: %s"
                                % (type(exc).__name__, str(exc)[:300]), None, None)
    return run


def stream_entries(hosts: Iterable[str], work: Callable[[str], Dict[str, Any]], jobs: int = 1,
                   chunk: int = 16, min_hosts: int = POOL_MIN_HOSTS) -> Iterator[Tuple[str, Dict[str, Any]]]:
    """``(host, work(host))`` for every host, in order, from ``jobs`` forked workers (1, or
    fewer than ``min_hosts`` hosts: here). ``work`` never raises for a host (an exception is
    that host's failed entry)."""
    global _WORK
    hosts = list(hosts)
    safe = _safe(work)
    done = 0
    if jobs > 1 and len(hosts) >= min_hosts:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        chunks = iter([hosts[i:i + chunk] for i in range(0, len(hosts), chunk)])
        _WORK = safe
        try:
            with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("fork")) as pool:
                # a few chunks ahead per worker, never all: results the caller has not taken yet
                # are whole entries (trimmed facts and findings), and the caller can be the
                # slower side (at 10,000 hosts they were 2 GiB waiting)
                window = deque(pool.submit(_work_chunk, c) for c in itertools.islice(chunks, jobs * WINDOW))
                while window:
                    entries = window.popleft().result()
                    window.extend(pool.submit(_work_chunk, c) for c in itertools.islice(chunks, 1))
                    for entry in entries:
                        yield hosts[done], entry
                        done += 1
        except BrokenProcessPool:
            pass  # a worker died: the hosts not returned yet are done below, in this process
        finally:
            _WORK = None
    for host in hosts[done:]:
        yield host, safe(host)
