#!/usr/bin/env bash
# Runs the whole suite: pytest (unit + integration through real namespaces, runtimes,
# ansible-playbook, ansible-lint) and ansible-test sanity/units offline.
set -euo pipefail
cd "$(dirname "$0")/.."
export ANSIBLE_COLLECTIONS_PATH="$PWD/.venv/dev-collections"
export ANSIBLE_NOCOLOR=1
python -m pytest "$@"
