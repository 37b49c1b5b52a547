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

import shlex
from dataclasses import dataclass, field
from typing import Any, FrozenSet, List, Mapping, Optional, Sequence, Tuple

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
