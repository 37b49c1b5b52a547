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
# Import the collection's plain-Python code now, through sys.path. Tests that load Ansible in this
# process (module unit tests, ansible-lint's testing helpers) install Ansible's collection finder,
# which refuses a first import of any further ansible_collections.nsguard.sysctl submodule
# ("collection metadata was not loaded"); the reports import their renderers lazily.
import importlib  # noqa: E402

for _kind in ("module_utils", "plugin_utils"):
    for _path in sorted((REPO / "plugins" / _kind).glob("*.py")):
        if _path.stem != "__init__":
            importlib.import_module(f"ansible_collections.nsguard.sysctl.plugins.{_kind}.{_path.stem}")

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
