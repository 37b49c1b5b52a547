#!/usr/bin/env bash
# ansible-test sanity and units for the collection, offline (only PyPI is reachable).
#
#   scripts/ansible-test.sh            sanity (the default test set) + units
#   scripts/ansible-test.sh sanity     only sanity        scripts/ansible-test.sh units   only units
#   extra arguments after the mode go to ansible-test (e.g. `sanity --test validate-modules -v`)
#
# ansible-test insists on running inside .../ansible_collections/<namespace>/<name>/, and the checkout is
# the collection root, so the tracked and untracked-but-not-ignored files are copied to
# tests/output/ansible-test/ansible_collections/nsguard/sysctl (a symlink would not do: ansible-test
# works from the resolved current directory). The copy gets its own empty git repository: ansible-test
# lists content with `git ls-files` of the nearest .git, and the nearest one would otherwise be the
# checkout's, where tests/output/ is ignored, so it would find no files at all.
#
# Environment: PYTHON (interpreter that has ansible-core; default .venv/bin/python), ANSIBLE_TEST_PYTHON
# (version for --python; default the one of PYTHON).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODE="${1:-all}"
case "$MODE" in
    sanity|units) shift ;;
    all) if [ $# -gt 0 ]; then shift; fi; [ $# -eq 0 ] || { echo "usage: $0 [all | sanity ARGS... | units ARGS...]" >&2; exit 2; } ;;
    *) echo "usage: $0 [all | sanity ARGS... | units ARGS...]" >&2; exit 2 ;;
esac

PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
ANSIBLE_TEST="$(dirname "$PYTHON")/ansible-test"
[ -x "$ANSIBLE_TEST" ] || { echo "ansible-test not found next to $PYTHON (run make test-venv)" >&2; exit 2; }
PYVER="${ANSIBLE_TEST_PYTHON:-$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')}"

# pyenv shims are shell scripts that pick an interpreter by the current directory's .python-version:
# ansible-test's interpreter discovery then finds a different (or no) python3.X than the one it runs
# with. Put the directory of the real interpreter behind the venv first on PATH.
REAL_BIN="$("$PYTHON" -c 'import os, sys; print(os.path.dirname(os.path.realpath(getattr(sys, "_base_executable", sys.executable))))')"
PATH="$REAL_BIN:$(dirname "$PYTHON"):$PATH"
export PATH

# ansible-test bootstraps pip in each virtual environment it makes with get-pip.py from
# ci-files.testing.ansible.com, which is not reachable. Its cache location takes a stand-in: pip from
# the interpreter's own ensurepip, then the requested pins (pip==24.2 ...) from PyPI. If PyPI cannot be
# reached the bundled pip is kept: ansible-test only uses it to install the test's requirements and then
# uninstalls it. --no-setuptools/--no-wheel are get-pip.py options that pip install does not know.
PIP_VERSION="$("$PYTHON" -c '
import inspect, re
from ansible_test._internal import python_requirements
m = re.search(r"pip=.([0-9.]+).", inspect.getsource(python_requirements))
print(m.group(1) if m else "24.2")')"
GET_PIP="$HOME/.ansible/test/cache/get_pip_${PIP_VERSION//./_}.py"
SHIM_MARK="nsguard.sysctl get-pip stand-in v2"
if ! grep -qF "$SHIM_MARK" "$GET_PIP" 2>/dev/null; then
    mkdir -p "$(dirname "$GET_PIP")"
    cat >"$GET_PIP.tmp.$$" <<EOF
# $SHIM_MARK (written by scripts/ansible-test.sh): offline get-pip.py for ansible-test.
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
packages = [a for a in args if not a.startswith("-")]
if packages and subprocess.call([sys.executable, "-m", "pip", "install"] + args) != 0:
    sys.stderr.write("get-pip stand-in: could not install %s; keeping the pip bundled with Python\\n" % " ".join(packages))
EOF
    mv -f "$GET_PIP.tmp.$$" "$GET_PIP"
fi

OUT="$REPO/tests/output/ansible-test"
DEST="$OUT/ansible_collections/nsguard/sysctl"
mkdir -p "$OUT"
# One run at a time: concurrent runs (pytest-xdist, an engineer by hand) share the copy.
exec 9>"$OUT/.lock"
flock 9

# Fresh copy each run (about 0.1 s) so files deleted in the checkout do not linger.
rm -rf "$DEST"
mkdir -p "$DEST"
( cd "$REPO" && git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' f; do [ -e "$f" ] || [ -L "$f" ] && printf '%s\0' "$f"; done \
    | tar --null --no-recursion -T - -cf - ) | tar -xf - -C "$DEST"
git -C "$DEST" init -q

cd "$DEST"
export ANSIBLE_NOCOLOR=1
rc=0

if [ "$MODE" = all ] || [ "$MODE" = sanity ]; then
    # The whole default test set; nothing is skipped, none of them needs more network than PyPI.
    # (pslint has no .ps1 file to check; shellcheck comes from scripts/install-test-host.sh and
    # would only warn and skip itself without the program.) Every test with requirements gets its own virtual environment under
    # ~/.ansible/test/venv, built from PyPI on first use (a few minutes) and reused afterwards: the
    # warm run of the whole set takes about 35 s on 2 cores.
    # No --venv: it would also build a controller venv inside the copy, i.e. again on every run,
    # and install ansible-core's requirements there. The controller is this project's venv, which
    # has ansible-core already.
    "$ANSIBLE_TEST" sanity --python "$PYVER" --color no "$@" || rc=$?
fi

if [ "$MODE" = all ] || [ "$MODE" = units ]; then
    # tests/conftest.py makes the checkout importable for plain pytest (a dev-collections link put
    # first on the collection path); ansible-test brings its own collection loader and refuses a
    # conftest outside the path it set up, so the copy goes without it.
    rm -f tests/conftest.py
    # All of tests/unit: ansible-test runs tests of plugins/modules and plugins/module_utils in
    # its "modules" context (target-side rules) and the rest as controller tests, with this venv's
    # pytest and the packages the tests need (hypothesis, jsonschema); about 25 s.
    "$ANSIBLE_TEST" units --python "$PYVER" --color no "$@" || rc=$?
fi
exit "$rc"
