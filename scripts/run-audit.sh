#!/usr/bin/env bash
# Audit this machine with the nsguard.sysctl.audit playbook: localhost, connection local, the
# venv's Python; the fleet reports go to $1 (default ./reports). Called by `make audit`, which
# installs the built collection first. Extra arguments go to ansible-playbook, e.g.
#   bash scripts/run-audit.sh reports -e nsguard_sysctl_fail_on=warning
# Exit status: ansible-playbook's (2 when a host has findings at or above nsguard_sysctl_fail_on,
# default error).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
REPORT_DIR="$(realpath -m "${1:-$PWD/reports}")"
shift || true
PYTHON="${NSGUARD_PYTHON:-$PWD/.venv/bin/python}"
if [ ! -x "$PYTHON" ]; then
    echo "run-audit: no Python at $PYTHON (run make audit, or set NSGUARD_PYTHON)" >&2
    exit 1
fi
PLAYBOOK="$(dirname "$PYTHON")/ansible-playbook"
[ -x "$PLAYBOOK" ] || PLAYBOOK=ansible-playbook
mkdir -p "$REPORT_DIR"
LOG="$REPORT_DIR/audit.log"

ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0 "$PLAYBOOK" -i localhost, -c local \
    -e "ansible_python_interpreter=$PYTHON" \
    -e "nsguard_sysctl_report_dir=$REPORT_DIR" \
    nsguard.sysctl.audit "$@" 2>&1 | tee "$LOG"
rc=${PIPESTATUS[0]}

echo
echo "== nsguard.sysctl audit of $(hostname): ansible-playbook exit status $rc =="
if [ -s "$REPORT_DIR/fleet.json" ]; then
    "$PYTHON" - "$REPORT_DIR/fleet.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
findings = report.get("findings") or []
counts = {"error": 0, "warning": 0, "info": 0}
rules = {}
for finding in findings:
    counts[finding.get("severity", "info")] = counts.get(finding.get("severity", "info"), 0) + 1
    rules[finding.get("rule")] = rules.get(finding.get("rule"), 0) + 1
print("findings: %d (%d error, %d warning, %d info)" % (len(findings), counts["error"], counts["warning"], counts["info"]))
if rules:
    print("by rule:  " + ", ".join("%s %d" % (r, n) for r, n in sorted(rules.items())))
rank = {"error": 0, "warning": 1, "info": 2}
for finding in sorted(findings, key=lambda f: rank.get(f.get("severity"), 3))[:10]:
    where = (finding.get("container") or {}).get("label") or "host"
    line = "  %-7s %s %s [%s]" % (finding.get("severity", "").upper(), finding.get("rule"), finding.get("key") or "-", where)
    print(line)
if len(findings) > 10:
    print("  ... %d more" % (len(findings) - 10))
PY
    echo "reports:  $REPORT_DIR (fleet.html, fleet.md, fleet.json, fleet.sarif, fleet.junit.xml, remediation.yml)"
    if [ -s "$REPORT_DIR/remediation.yml" ]; then
        # The playbook-adjacent host_vars give localhost the controller's Python, as the audit
        # had: interpreter discovery can pick an interpreter that does not run (a pyenv shim).
        mkdir -p "$REPORT_DIR/host_vars"
        [ -e "$REPORT_DIR/host_vars/localhost.yml" ] || printf '%s\n' '---' \
            '# Written by scripts/run-audit.sh: localhost (-c local) runs modules with the controller Python.' \
            'ansible_python_interpreter: "{{ ansible_playbook_python }}"' > "$REPORT_DIR/host_vars/localhost.yml"
        playbook="$(realpath -m --relative-base="$PWD" "$REPORT_DIR/remediation.yml")"
        bin="$(realpath -m --relative-base="$PWD" "$(dirname "$PLAYBOOK")")"
        [ "$PLAYBOOK" = ansible-playbook ] && bin=""
        echo "fix:      review, from $PWD (its ansible.cfg finds the collections):"
        echo "          ${bin:+$bin/}ansible-playbook -i localhost, -c local $playbook --check --diff"
    fi
else
    echo "no fleet report was written; see $LOG"
fi
echo "log:      $LOG"
exit "$rc"
