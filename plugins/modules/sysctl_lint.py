#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: nsguard.sysctl contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: sysctl_lint
short_description: Find the sysctls containers believe are theirs but the host owns, with the tasks that fix them
version_added: "0.1.0"
description:
  - Evaluates the collection's lint rules (C(rules/catalog/), documented in C(docs/rules.md))
    over one host's facts, as gathered by M(nsguard.sysctl.sysctl_facts), and returns the
    findings. Each finding names the rule, severity, container, key, the observed values
    (host, container, requested, expected, persisted), the key's class and the evidence for it,
    a message that says what happens and where to fix it, and remediation tasks ready for a
    play. The shape is described in C(docs/findings.md).
  - Rules apply to every namespace set, whether it was identified as a container or not.
  - Keys are classified by C(nsguard.sysctl)'s knowledge base and the host's own probe (the
    same classifier as the C(nsguard.sysctl.sysctl_classify) filter).
  - Expectations of workloads come from built-in profiles (Elasticsearch, OpenSearch,
    Redis/Valkey, SonarQube, Cassandra; C(rules/profiles/)) and from O(expectations) and
    O(expectation_files).
  - A malformed rule file, expectation or parameter is reported in RV(errors) (and as a
    warning) with its file and path, and skipped; the other rules still run. Set O(strict) to
    fail instead.
  - The facts are the target's word. They are validated against
    C(schemas/sysctl-facts.schema.json) first; facts that do not match, or facts that come with
    other C(nsguard_sysctl_*) facts (which would shadow the audit's own variables), are never
    linted. The task fails with the JSON path or the names, and RV(unlintable) says why.
  - This is an action plugin; it runs on the controller and opens no connection.
options:
  facts:
    description:
      - The host's facts (C(ansible_facts.nsguard_sysctl)).
      - Defaults to the facts of the current host.
    type: dict
  classification:
    description:
      - The class of each key, as C(nsguard.sysctl.sysctl_classify) returns it.
      - Computed from O(facts) and the knowledge base when omitted.
    type: dict
  knowledge_dirs:
    description: Extra knowledge base directories (site entries, see C(docs/knowledge.md)).
    type: list
    elements: path
    default: []
  rules_dirs:
    description:
      - Directories of user rule files (C(<ID>-<name>.yml), validated against
        C(rules/catalog/catalog.schema.json)), added to the built-in catalog.
      - User rules use a declarative check (C(host-value), C(set-value), C(requested-key)).
    type: list
    elements: path
    default: []
  profiles:
    description:
      - Built-in workload profiles to use; V(all), a list of profile names, or an empty list
        (or V(false)) for none.
    type: raw
    default: all
  expectations:
    description:
      - User expectations, each a profile document (C(rules/profiles/profile.schema.json)) with
        C(profile), C(match) (image, name, comm, cmdline, runtime, pod_namespace, labels) and
        C(expect) (key -> constraint such as V(>=262144), or entries with C(min), C(max),
        C(equals), C(one_of), C(not_equals), C(severity), C(why)).
    type: list
    elements: dict
    default: []
  expectation_files:
    description: YAML files or directories of expectation documents, same shape as O(expectations).
    type: list
    elements: path
    default: []
  rule_params:
    description:
      - 'Rule id -> parameter values, for example C({"NSG005": {"max_per_core": 65536, "count_warning_ratio": 0.8}}).'
      - The parameters of each rule and their defaults are listed in C(docs/rules.md).
    type: dict
    default: {}
  rule_overrides:
    description: 'Rule id -> C({enabled, severity}), for example C({"NSG004": {"severity": "info"}}).'
    type: dict
    default: {}
  skip_rules:
    description: Rule ids or names not to run.
    type: list
    elements: str
    default: []
  remediation:
    description:
      - Where the rendered remediation tasks point.
      - C(sysctl_d_dir) (default C(/etc/sysctl.d)), C(file_prefix) (default C(90)), C(lxc_path)
        (default C(/var/lib/lxc)), C(reload) (default V(true)).
    type: dict
    default: {}
  host:
    description: The host name put in each finding. Defaults to C(inventory_hostname).
    type: str
  fail_on:
    description:
      - Sets RV(threshold_reached) when a finding of this severity or worse is present. The
        action fails on findings only with O(fail).
    type: str
    choices: [never, warning, error]
    default: never
  fail:
    description:
      - Fail the task when RV(threshold_reached), with the message
        C(HOST has N error and M warning findings (nsguard_sysctl_fail_on=error)) (the
        C(nsguard.sysctl.audit) role's decision, made here so that no task after this one runs on
        every host).
      - The failed result keeps RV(counts), RV(worst), RV(threshold_reached), RV(partial),
        RV(errors) and RV(nsguard_lint), and leaves RV(findings), RV(summary) and RV(rules) out
        (Ansible prints a failed result whole); RV(findings_left_out) says how many findings
        there were. M(nsguard.sysctl.sysctl_report) lints such a host again (give it the same
        lint options in its O(nsguard.sysctl.sysctl_report#module:lint) option).
    type: bool
    default: false
  strict:
    description: Fail when a rule file, expectation or option is malformed.
    type: bool
    default: false
  summary_lines:
    description:
      - Print a summary of this host (namespace sets, findings per severity, a partial gather) and
        at most this many findings, one line each, in the task's output at the default
        verbosity. V(0) prints nothing.
    type: int
    default: 0
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads facts only; it behaves the same in check mode.
  diff_mode:
    support: none
  platform:
    support: full
    platforms: posix
notes:
  - Host remediation tasks use C(ansible.posix.sysctl) with a file under C(/etc/sysctl.d/) and a
    C(when) guard that keeps them from ever running inside a container. Container-spec tasks
    (C(community.docker.docker_container), C(containers.podman.podman_container),
    C(kubernetes.core.k8s), an LXC config line) recreate the container or roll the workload, so
    the docker, podman and Kubernetes ones run only when C(nsguard_sysctl_container_spec_apply)
    is true. See C(docs/rules.md).
seealso:
  - module: nsguard.sysctl.sysctl_facts
  - module: nsguard.sysctl.sysctl_report
author:
  - nsguard.sysctl contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Gather the sysctl facts of the host and its containers
  nsguard.sysctl.sysctl_facts:

- name: Lint them
  nsguard.sysctl.sysctl_lint:
  register: lint

- name: Show the errors
  ansible.builtin.debug:
    msg: "{{ lint.findings | selectattr('severity', 'equalto', 'error') | map(attribute='message') | list }}"

- name: Site expectations, a tighter conntrack threshold, no built-in Cassandra profile
  nsguard.sysctl.sysctl_lint:
    profiles: [elasticsearch, opensearch, redis, sonarqube]
    expectations:
      - profile: search-cluster
        match: {name: "search-*"}
        expect:
          vm.max_map_count: ">=1048576"
    rule_params:
      NSG005: {count_warning_ratio: 0.6, max_per_core: 65536}
    remediation:
      sysctl_d_dir: /etc/sysctl.d
      file_prefix: "60"
  register: lint

- name: Lint, print a summary and fail the host on errors (the audit role's lint task)
  nsguard.sysctl.sysctl_lint:
    fail_on: error
    fail: true
    summary_lines: 50
  register: nsguard_sysctl_lint_result
"""

RETURN = r"""
findings:
  description: The findings, worst first (shape in C(docs/findings.md)).
  returned: unless the task failed on them (O(fail))
  type: list
  elements: dict
  contains:
    rule:
      description: Rule id.
      type: str
      sample: NSG003
    rule_name:
      description: Rule slug.
      type: str
      sample: expected-global-not-met
    severity:
      description: error, warning or info.
      type: str
    host:
      description: The host.
      type: str
    set_id:
      description: The namespace set, null for host-level findings.
      type: str
    container:
      description: Identity of the set (runtime, id, name, image, pod_name, pod_namespace, netns_name, label, pid).
      type: dict
    key:
      description: The sysctl.
      type: str
      sample: vm.max_map_count
    values:
      description: host, container, requested, expected, persisted.
      type: dict
    class:
      description: The key's class on this host.
      type: str
      sample: global
    namespace:
      description: The namespace type that owns the key (none for global keys).
      type: str
    evidence:
      description: Why the key has its class (knowledge entry, probe).
      type: str
    message:
      description: What happens and where to fix it.
      type: str
    remediation:
      description: C(where) (host, container-spec, none), C(tasks) (Ansible tasks), and an optional C(note).
      type: dict
    details:
      description: Rule-specific extras (conntrack top namespaces, exposed keys, failed expectations).
      type: dict
counts:
  description: Findings per severity.
  returned: always
  type: dict
  sample: {error: 1, warning: 2, info: 0}
worst:
  description: The worst severity found, or null.
  returned: always
  type: str
  sample: error
threshold_reached:
  description: Whether a finding at or above O(fail_on) is present.
  returned: always
  type: bool
summary:
  description: One line per finding (severity, rule, key, container, message).
  returned: unless the task failed on the findings (O(fail))
  type: list
  elements: str
rules:
  description: Ids of the rules in the catalog.
  returned: unless the task failed on the findings (O(fail))
  type: list
  elements: str
expectations:
  description: Number of expectation entries in use (built-in profiles and user ones).
  returned: always
  type: int
errors:
  description: Malformed rule files, expectations, parameters or a failed check (file, path, message); they were skipped.
  returned: always
  type: list
  elements: dict
partial:
  description:
    - Why the gather saw less than the whole host (not root, namespace sets not entered), or null.
      A partial host counts as reaching any O(fail_on) other than C(never).
  returned: always
  type: str
unlintable:
  description: Why the facts were not linted (schema path, shadowing fact names); only when the task fails so.
  returned: when the facts are refused
  type: str
nsguard_lint:
  description: What the result was computed from (C(version), C(gathered_at) of the facts, C(config) a digest of
    the lint options); the fleet report uses a registered result only when it matches the facts it reports.
  returned: always
  type: dict
findings_left_out:
  description: How many findings the host has; only when the task failed on them (O(fail)), which leaves them out.
  returned: when the task failed on the findings
  type: int
"""
