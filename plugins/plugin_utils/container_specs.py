"""Where container specs keep their sysctls: the module names, the pod-template paths, and the
``docker run``/``podman run`` command lines, in one place.

Plain data and a command-line parser (no ansible import): the ansible-lint rules use it to find
what a task or a manifest asks for, and remediation code can use the same vocabulary. Each
spec kind also names the *path* its request takes into a runtime (the knowledge base's runtime
names): ``docker_container``, ``docker_compose_v2`` and Compose files go through the Docker
Engine API (``docker-api``: the daemon hands the keys to runc's validator), ``docker run
--sysctl`` in a command/shell task goes through the docker CLI's allowlist (``docker-cli``),
Podman through its own checks (``podman``), a Pod through the kubelet and then the OCI runtime.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

DOCKER_CONTAINER = frozenset({"community.docker.docker_container", "docker_container"})
PODMAN_CONTAINER = frozenset({"containers.podman.podman_container", "podman_container"})
PODMAN_POD = frozenset({"containers.podman.podman_pod", "podman_pod"})
SWARM_SERVICE = frozenset({"community.docker.docker_swarm_service", "docker_swarm_service"})
COMPOSE_V2 = frozenset({"community.docker.docker_compose_v2", "docker_compose_v2"})
K8S = frozenset({"kubernetes.core.k8s", "k8s", "community.kubernetes.k8s", "redhat.openshift.k8s",
                 "community.okd.k8s"})
POSIX_SYSCTL = frozenset({"ansible.posix.sysctl", "sysctl", "ansible.legacy.sysctl"})
COMMAND_MODULES = frozenset({"ansible.builtin.command", "command", "ansible.builtin.shell", "shell",
                             "ansible.legacy.command", "ansible.legacy.shell"})
CONTAINER_CONNECTIONS = frozenset({
    "community.docker.docker", "docker", "community.docker.docker_api", "docker_api",
    "containers.podman.podman", "podman", "kubernetes.core.kubectl", "kubectl",
    "community.kubernetes.kubectl",
})
CONTAINER_MODULES = DOCKER_CONTAINER | PODMAN_CONTAINER | PODMAN_POD | SWARM_SERVICE | COMPOSE_V2 | K8S
K8S_DEFINITION_OPTIONS = ("definition", "resource_definition", "inline")

# The modules remediation writes (fully qualified), and the option of each container module that
# holds the container's whole sysctl map.
DOCKER_MODULE = "community.docker.docker_container"
PODMAN_MODULE = "containers.podman.podman_container"
K8S_MODULE = "kubernetes.core.k8s"
ENGINE_MODULES = {"docker": DOCKER_MODULE, "podman": PODMAN_MODULE}  # a running container's engine -> module
SYSCTL_OPTIONS = {DOCKER_MODULE: "sysctls", PODMAN_MODULE: "sysctl"}


def sysctl_option(module: str) -> Optional[str]:
    """The option of a container ``module`` (any spelling) that holds its sysctls, or None."""
    if module in DOCKER_CONTAINER or module in SWARM_SERVICE:
        return "sysctls"
    if module in PODMAN_CONTAINER or module in PODMAN_POD:
        return "sysctl"
    return None

# Every workload kind that holds a pod template, and the path to its PodSpec.
POD_SPEC_PATHS = {
    "Pod": ("spec",),
    "PodTemplate": ("template", "spec"),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "DeploymentConfig": ("spec", "template", "spec"),  # OpenShift apps.openshift.io/v1
}
POD_HOST_NAMESPACES = (("net", "hostNetwork"), ("ipc", "hostIPC"))
# The apiVersion a patch of each workload kind names.
API_VERSIONS = {"Pod": "v1", "PodTemplate": "v1", "ReplicationController": "v1", "Deployment": "apps/v1",
                "StatefulSet": "apps/v1", "DaemonSet": "apps/v1", "ReplicaSet": "apps/v1", "Job": "batch/v1",
                "CronJob": "batch/v1", "DeploymentConfig": "apps.openshift.io/v1"}

# The runtime path (knowledge base runtime names) of each kind of spec.
PATH_DOCKER_API = ("docker-api",)
PATH_DOCKER_CLI = ("docker-cli",)
PATH_PODMAN = ("podman",)
PATH_COMPOSE = ("docker-api", "podman")   # docker compose, or podman-compose
PATH_KUBELET = ("kubelet",)
KUBELET_OCI = ("runc", "crun")            # what containerd and CRI-O run a Pod with


def is_host(value: Any) -> bool:
    """``host`` as a network/ipc/uts mode, in a string, a ``{name: host}`` or a list of them."""
    if isinstance(value, str):
        return value.strip().lower() == "host"
    if isinstance(value, Mapping):
        return is_host(value.get("name"))
    if isinstance(value, (list, tuple)):
        return any(is_host(v) for v in value)
    return False


# Paths that name the host's network namespace from wherever podman runs: its own and init's.
HOST_NETNS_PATHS = ("/proc/1/ns/net", "/proc/self/ns/net")


def joins_host_netns(mode: Any) -> bool:
    """A podman network mode that joins the host's network namespace *by path*
    (``ns:/proc/1/ns/net``): crun does not notice it is the host's and writes there."""
    return isinstance(mode, str) and mode.strip().startswith("ns:") and mode.strip()[3:] in HOST_NETNS_PATHS


def docker_bridge(mode: Any) -> bool:
    """A Docker network mode that gives the container an endpoint (bridge or a user network):
    where moby migrates or refuses per-interface sysctls. Unset means the default bridge."""
    if mode is None:
        return True
    if not isinstance(mode, str):
        return False
    text = mode.strip().lower()
    return text not in ("host", "none") and not text.startswith(("container:", "service:"))


@dataclass(frozen=True)
class CliRun:
    """One ``docker run``/``podman run`` (or create, ``podman pod create``) in a command line."""

    tool: str                                  # docker | podman
    sysctls: Tuple[Tuple[str, str], ...]
    host_namespaces: FrozenSet[str] = field(default_factory=frozenset)
    text: str = ""                             # the words up to the end of this command

    @property
    def path(self) -> Tuple[str, ...]:
        return PATH_DOCKER_CLI if self.tool == "docker" else PATH_PODMAN


_SEPARATORS = {";", "&&", "||", "|", "&", "\n", "(", ")"}
_NS_FLAGS = {"--network": "net", "--net": "net", "--ipc": "ipc", "--uts": "uts"}
_RUN_WORDS = {("run",), ("create",), ("container", "run"), ("container", "create"), ("pod", "create")}
# docker/podman global options that take a value (before the subcommand).
_GLOBAL_VALUE_FLAGS = {"-H", "--host", "-c", "--context", "--config", "-l", "--log-level", "--root",
                       "--runroot", "--runtime", "--url", "--connection", "--tmpdir", "--storage-driver",
                       "--cgroup-manager", "--events-backend"}


def _split(command: str) -> Optional[List[str]]:
    try:
        lexer = shlex.shlex(command, posix=True, punctuation_chars=";&|()")
        lexer.whitespace_split = True
        lexer.commenters = ""
        return list(lexer)
    except ValueError:  # unbalanced quotes: not judgeable
        return None


def cli_runs(command: Any) -> List[CliRun]:
    """Every ``docker``/``podman`` run in a shell command line or an argv list that asks for sysctls."""
    if isinstance(command, (list, tuple)):
        words = [str(w) for w in command]
    elif isinstance(command, str):
        words = _split(command) or []
    else:
        return []
    runs: List[CliRun] = []
    index = 0
    while index < len(words):
        tool = words[index].rsplit("/", 1)[-1]
        if tool not in ("docker", "podman") or (index and words[index - 1] not in _SEPARATORS
                                                 and words[index - 1] not in ("sudo", "exec", "command", "then", "do")):
            index += 1
            continue
        cursor = index + 1
        while cursor < len(words) and words[cursor].startswith("-"):
            flag = words[cursor].split("=", 1)[0]
            cursor += 2 if flag in _GLOBAL_VALUE_FLAGS and "=" not in words[cursor] else 1
        sub = tuple(words[cursor:cursor + 2])
        verb = next((w for w in _RUN_WORDS if sub[:len(w)] == w), None)
        if verb is None:
            index = cursor
            continue
        cursor += len(verb)
        end = cursor
        while end < len(words) and words[end] not in _SEPARATORS:
            end += 1
        sysctls: List[Tuple[str, str]] = []
        hostns = set()
        args = words[cursor:end]
        for pos, word in enumerate(args):
            flag, eq, inline = word.partition("=")
            if flag not in ("--sysctl",) and flag not in _NS_FLAGS:
                continue
            arg = inline if eq else (args[pos + 1] if pos + 1 < len(args) else "")
            if flag == "--sysctl":
                key, dummy, value = arg.partition("=")
                if key:
                    sysctls.append((key.strip(), value.strip()))
            elif arg.strip().lower() == "host":
                hostns.add(_NS_FLAGS[flag])
        if sysctls:
            runs.append(CliRun(tool, tuple(sysctls), frozenset(hostns), " ".join(words[index:end])))
        index = end
    return runs


def command_text(args: Mapping[str, Any]) -> Any:
    """The command of a command/shell task's arguments (free form, ``cmd`` or ``argv``)."""
    for option in ("_raw_params", "cmd", "argv"):
        if args.get(option):
            return args[option]
    return None


def pod_spec(doc: Mapping[str, Any]) -> Tuple[Optional[Sequence[str]], Any]:
    """``(path, PodSpec)`` of a workload manifest, or ``(None, None)``."""
    path = POD_SPEC_PATHS.get(doc.get("kind")) if isinstance(doc.get("kind"), str) else None
    node: Any = doc
    for part in path or ():
        node = node.get(part) if isinstance(node, Mapping) else None
    return (path, node) if path and isinstance(node, Mapping) else (None, None)


def _kind_of(definition: Mapping[str, Any], kind: Optional[str]) -> str:
    """``kind``, else the one the definition's shape says (a patch definition carries no kind):
    a job template is a CronJob's, a template a workload's, anything else a Pod's."""
    if isinstance(kind, str) and kind in POD_SPEC_PATHS:
        return kind
    spec = definition.get("spec") if isinstance(definition.get("spec"), Mapping) else {}
    return "CronJob" if "jobTemplate" in spec else "Deployment" if "template" in spec else "Pod"


def pod_spec_in(definition: Mapping[str, Any], kind: Optional[str] = None) -> Mapping[str, Any]:
    """The PodSpec of a workload ``definition`` of ``kind`` (``{}`` where it has none yet)."""
    node: Any = definition
    for part in POD_SPEC_PATHS[_kind_of(definition, kind)]:
        node = node.get(part) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) else {}


def with_pod_spec(definition: Mapping[str, Any], pod: Mapping[str, Any], kind: Optional[str] = None) -> Dict[str, Any]:
    """``definition`` with ``pod`` as the PodSpec of ``kind`` (every other field kept)."""
    path = POD_SPEC_PATHS[_kind_of(definition, kind)]

    def put(node: Any, rest: Sequence[str]) -> Dict[str, Any]:
        node = dict(node) if isinstance(node, Mapping) else {}
        node[rest[0]] = dict(pod) if len(rest) == 1 else put(node.get(rest[0]), rest[1:])
        return node
    return put(definition, path)


# Kubernetes names generated suffixes with rand.SafeEncodeString: no vowels, no 0/1/3
# (k8s.io/apimachinery/pkg/util/rand), so "node-exporter" is not mistaken for a hash.
_SAFE = "[bcdfghjklmnpqrstvwxz2456789]"
# A CronJob's Job is <cronjob>-<scheduled time in minutes> (pkg/controller/cronjob getJobName),
# its pod <job>-<5 safe>; a run of 8+ digits with a 0, 1 or 3 is no pod-template hash.
_CRONJOB_POD = re.compile(r"^(?P<owner>.+)-(?=\d*[013])\d{8,}-%s{5}$" % _SAFE)
_CRONJOB_JOB = re.compile(r"^(?P<owner>.+)-\d{8,}$")
_DEPLOYMENT_POD = re.compile(r"^(?P<owner>.+)-%s{6,10}-%s{5}$" % (_SAFE, _SAFE))
_STATEFUL_POD = re.compile(r"^(?P<owner>.+)-\d+$")
_DAEMONSET_POD = re.compile(r"^(?P<owner>.+)-%s{5}$" % _SAFE)
# Labels a pod carries from its owner (OpenShift's deployer; the Job controller).
_DC_LABELS = ("openshift.io/deployment-config.name", "deploymentconfig")
_JOB_LABELS = ("batch.kubernetes.io/job-name", "job-name")


def _owner(kind: str, name: str) -> Dict[str, str]:
    return {"api_version": API_VERSIONS[kind], "kind": kind, "name": name}


def pod_owner(pod_name: str, labels: Optional[Mapping[str, Any]] = None) -> Dict[str, str]:
    """Guess the workload that owns a pod (pods themselves are immutable, so the fix goes into the
    owner's pod template): from the owner's labels where the pod has them, else from the
    generated name. A guess: check it."""
    labels = labels if isinstance(labels, Mapping) else {}
    for label in _DC_LABELS:
        if isinstance(labels.get(label), str) and labels[label]:
            return _owner("DeploymentConfig", labels[label])
    for label in _JOB_LABELS:
        match = _CRONJOB_JOB.match(str(labels.get(label) or ""))
        if match:
            return _owner("CronJob", match.group("owner"))
    for regex, kind in ((_CRONJOB_POD, "CronJob"), (_DEPLOYMENT_POD, "Deployment"), (_STATEFUL_POD, "StatefulSet"),
                        (_DAEMONSET_POD, "DaemonSet")):
        match = regex.match(pod_name)
        if match:
            return _owner(kind, match.group("owner"))
    return _owner("Pod", pod_name)
