#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: sysctl_report
short_description: Write fleet-wide reports and a remediation playbook from every host's findings
version_added: "0.1.0"
description:
  - Runs on the controller, once for the whole play (set C(run_once) to V(true)). It reads each host's
    facts (C(ansible_facts.nsguard_sysctl), see R(sysctl_facts,nsguard.sysctl.sysctl_facts_module))
    from C(hostvars) (as stored, never templated), and writes, in O(dest), C(fleet.json), C(fleet.md), C(fleet.html), C(fleet.sarif),
    C(fleet.junit.xml) and C(remediation.yml).
  - Findings are computed on the controller, never taken from a target or the fact cache. A
    host's findings are the result of this run's C(nsguard.sysctl.sysctl_lint) task registered as
    O(lint_result_var) when it was computed from the facts being reported; otherwise (a fact cache,
    a host whose lint did not run, a host whose lint task failed on its findings and so left them
    out) this action lints the facts itself with O(lint), and warns when the registered result
    names other lint options than O(lint).
  - Facts are validated against C(schemas/sysctl-facts.schema.json) first. A host whose facts do not
    match, or that returned other C(nsguard_sysctl_*) facts (they would shadow the audit's own
    variables), is reported as C(failed) with the JSON path or the names in every output and counts
    for O(fail_on); the other hosts are reported as usual.
  - A host whose gather saw less than the whole host (the module ran without root, namespace sets
    could not be entered) is C(ok) with a C(partial) reason, listed among the problems, and counts
    for O(fail_on) like an unaudited host.
  - Hosts of the play that were unreachable or failed are listed in every output with their
    status, never dropped. A host is C(failed) when it is in C(ansible_failed_hosts), or when it
    has no facts; C(unreachable) when Ansible removed it from the play without failing it. The
    message is Ansible's own (see O(reach_result_var)) when the role's first task recorded it.
  - In an C(always) section (the audit role's), a host that failed in the block is not in
    C(ansible_failed_hosts) yet. A host removed from the play whose O(lint_result_var) failed on
    its findings (O(nsguard.sysctl.sysctl_lint#module:fail)) is C(ok), with those findings; one
    with a registered O(reach_result_var) or O(lint_result_var) that did not reach or failed
    otherwise is C(failed); one with neither is C(unreachable).
  - Every file is written atomically (a temporary file in O(dest), fsync, rename), so an interrupted
    run leaves the previous report whole. A format that cannot be written fails the task after
    the other formats are written.
  - Prints a final summary line with the number of hosts per status and findings per severity.
  - This is an action plugin; it opens no connection to the hosts. The reports are written in
    check mode too - auditing changes nothing on the hosts.
  - The file formats are described in the collection's C(docs/reports.md); C(fleet.json) follows
    the JSON Schema C(schemas/fleet-report.schema.json) shipped in the collection.
options:
  dest:
    description:
      - Directory for the reports, created when missing.
      - Defaults to the variable C(nsguard_sysctl_report_dir), or C(reports) (relative to the
        working directory of C(ansible-playbook)).
    type: path
  formats:
    description: The outputs to write.
    type: list
    elements: str
    choices: [json, md, html, sarif, junit, remediation]
    default: [json, md, html, sarif, junit, remediation]
  hosts:
    description:
      - The hosts to report on. Defaults to C(ansible_play_hosts_all), so hosts that became
        unreachable or failed are included.
    type: list
    elements: str
  fail_on:
    description:
      - Fail the task (and so the play's exit status) for pipelines.
      - V(never) never fails; V(error) fails on any C(error) finding; V(warning) on any C(error)
        or C(warning) finding. Both also fail when a host was unreachable or failed, whose state is
        unknown.
      - Defaults to the variable C(nsguard_sysctl_fail_on), or V(never).
    type: str
    choices: [never, warning, error]
  lint_result_var:
    description:
      - Host variable holding the registered result of C(nsguard.sysctl.sysctl_lint) for this run.
        Used only when it was computed from the host's current facts and no fact of the same name
        exists; else the host is linted here.
    type: str
    default: nsguard_sysctl_lint_result
  reach_result_var:
    description:
      - Host variable holding the registered result of the role's first task (a C(raw) C(true)
        that opens the connection). For a host that was unreachable there, the report quotes
        Ansible's own message from it (for example the ssh error) instead of a generic one. Read as text, never templated; ignored when a fact of the same name exists.
    type: str
    default: nsguard_sysctl_reach_result
  lint:
    description:
      - Options of C(nsguard.sysctl.sysctl_lint) that shape findings (C(knowledge_dirs),
        C(rules_dirs), C(profiles), C(expectations), C(expectation_files), C(rule_params),
        C(rule_overrides), C(skip_rules), C(remediation)), for the hosts this action lints itself.
      - The audit role gives the options of its lint task.
    type: dict
    default: {}
  facts_var:
    description: Name of the facts under C(ansible_facts).
    type: str
    default: nsguard_sysctl
  source:
    description:
      - V(play) reads the facts this play gathered; status comes from the play.
      - V(cache) reads facts from Ansible's fact cache (playbook C(nsguard.sysctl.report));
        a host without cached facts is reported C(unreachable). Every host is linted here, from its
        cached facts. A file cache (C(ansible.builtin.jsonfile), or another file-backed cache plugin)
        is read one host at a time, so the controller keeps only what the reports need of each host;
        any other cache plugin is read through C(hostvars), which keeps every host's facts in memory
        until the run ends (said at C(-v)).
    type: str
    choices: [play, cache]
    default: play
  jobs:
    description:
      - With O(source=cache) and a file cache, how many forked workers read, validate and lint the
        cached hosts. V(1) does everything in this process.
      - Defaults to the CPUs this process may run on, at most 8, for 64 hosts or more (fewer are
        done in this process).
    type: int
  docs_base_url:
    description:
      - Base URL of the collection's sources; each rule's help link is
        C(<docs_base_url>docs/rules/<rule id>.md) (SARIF C(helpUri), HTML, Markdown).
      - Defaults to the variable C(nsguard_sysctl_docs_base_url), else the environment variable
        C(NSGUARD_SYSCTL_DOCS_BASE_URL), else the C(file://) URL of the docs shipped inside the
        installed collection (so the links always open).
    type: str
  title:
    description: Title of the HTML and Markdown reports and the JUnit test suites.
    type: str
    default: nsguard.sysctl fleet report
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads host variables only and changes nothing on the hosts; the reports are written in check mode too.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
notes:
  - The reports are written on the controller, also in check mode.
seealso:
  - module: nsguard.sysctl.sysctl_facts
author:
  - nsguard.sysctl contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Write the fleet reports once, after every host was audited
  nsguard.sysctl.sysctl_report:
    dest: "{{ playbook_dir }}/reports"
    fail_on: error
  run_once: true

- name: Only the machine-readable outputs for a pipeline
  nsguard.sysctl.sysctl_report:
    formats: [json, sarif, junit]
    fail_on: warning
  run_once: true

- name: Report on some hosts only, linting with the Elasticsearch profile only
  nsguard.sysctl.sysctl_report:
    hosts: "{{ groups['k8s_nodes'] }}"
    lint:
      profiles: [elasticsearch]
  run_once: true
"""

RETURN = r"""
dest:
  description: Absolute path of the report directory.
  returned: always
  type: str
  sample: /srv/audit/reports
files:
  description: Path of each file written, by format.
  returned: always
  type: dict
  sample: {json: /srv/audit/reports/fleet.json, html: /srv/audit/reports/fleet.html}
summary_line:
  description: The summary line printed at the end.
  returned: always
  type: str
  sample: "nsguard.sysctl: 3 hosts (2 ok, 1 unreachable, 0 failed), 12 containers, 9 findings: 2 error, 5 warning, 2 info"
hosts:
  description: Number of hosts per status.
  returned: always
  type: dict
  sample: {total: 3, ok: 2, unreachable: 1, failed: 0}
counts:
  description: Number of findings per severity.
  returned: always
  type: dict
  sample: {total: 9, error: 2, warning: 5, info: 2}
per_host:
  description: Per host, its status and number of findings per severity.
  returned: always
  type: dict
  sample: {node1: {status: ok, total: 4, error: 1, warning: 2, info: 1}, node3: {status: unreachable, total: 0, error: 0, warning: 0, info: 0}}
per_rule:
  description: Number of findings per rule id.
  returned: always
  type: dict
  sample: {NSG001: 2, NSG004: 5}
problems:
  description: Malformed input that was skipped or corrected (host, where, message); the rest was reported.
  returned: always
  type: list
  elements: dict
fail_on:
  description: The threshold that was applied.
  returned: always
  type: str
render_errors:
  description: Formats that could not be written, with the error; their previous files are unchanged.
  returned: when a format failed
  type: dict
"""
