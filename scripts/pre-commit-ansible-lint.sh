#!/usr/bin/env bash
# The pre-commit hook nsguard-sysctl-ansible-lint (.pre-commit-hooks.yaml): ansible-lint from PATH
# with the rules of this checkout (pre-commit's clone of the hook repository at the pinned rev),
# the built-in rules kept (-R), offline (no requirements or schema downloads in a commit hook).
# The files pre-commit passes are linted; the project's .ansible-lint applies as usual.
set -euo pipefail
RULES="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/rules/ansible_lint"
if ! command -v ansible-lint >/dev/null 2>&1; then
    echo "nsguard-sysctl-ansible-lint: ansible-lint is not on PATH (pip install ansible-lint)" >&2
    exit 2
fi
exec ansible-lint --offline -R -r "$RULES" "$@"
