"""Shared test set-up: make the working tree importable as ``ansible_collections.nsguard.sysctl``.

The Makefile's ``dev-link`` target links the checkout into
``.venv/dev-collections/ansible_collections/nsguard/sysctl``; the same link is made here when it
is missing so that ``pytest`` works straight after ``make test-venv``.
"""
from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEV_COLLECTIONS = REPO / ".venv" / "dev-collections"
_LINK = DEV_COLLECTIONS / "ansible_collections" / "nsguard" / "sysctl"

if not _LINK.exists():
    _LINK.parent.mkdir(parents=True, exist_ok=True)
    try:
        _LINK.symlink_to(REPO)
    except FileExistsError:  # another xdist worker made it first
        pass

if str(DEV_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(DEV_COLLECTIONS))
# One import regime for the whole session: Ansible's own collection finder, installed before any
# test imports the collection. Module unit tests and ansible-lint's helpers load Ansible in this
# process, and a finder installed after the collection was imported from sys.path refuses its
# further submodules ("collection metadata was not loaded"); installed first, it loads them all.
from ansible.plugins.loader import init_plugin_loader  # noqa: E402

init_plugin_loader([str(DEV_COLLECTIONS)])

# Subprocesses (ansible-playbook, ansible-doc, ansible-lint) find the collection here.
os.environ["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join(
    [str(DEV_COLLECTIONS)] + [p for p in os.environ.get("ANSIBLE_COLLECTIONS_PATH", "").split(os.pathsep) if p]
)
os.environ.setdefault("ANSIBLE_NOCOLOR", "1")
# The compiled data cache (plugin_utils/datacache.py) of this session, here and in every
# ansible-playbook/ansible-lint the tests start: fuzzed and edited data files never land in the
# user's ~/.cache, and no entry of an earlier run decides a test.
_DATA_CACHE = tempfile.mkdtemp(prefix="nsguard-test-datacache-")
atexit.register(shutil.rmtree, _DATA_CACHE, True)
os.environ["NSGUARD_SYSCTL_CACHE_DIR"] = _DATA_CACHE
os.environ.setdefault("ANSIBLE_PYTHON_INTERPRETER", sys.executable)
