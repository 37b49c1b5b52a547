"""Shared code of the nsguard.sysctl ansible-lint rules (this module holds no rule).

ansible-lint imports every ``*.py`` of a rules directory by its bare name, so this helper has a
stem no other module on ``sys.path`` is likely to have. It does three jobs:

1. **Find the collection's engine.** The rules read the same knowledge base as the audit,
   through ``plugins/plugin_utils/static_judge.py`` of the collection they ship with. That
   collection is ``../..`` from this file (``<collection>/rules/ansible_lint/``), or
   ``./_collection`` in the pip package (``ansiblelint.rules.custom.nsguard_sysctl``). Its
   ``plugins/`` directory is loaded once as the package ``nsguard_sysctl_engine`` (the engine's
   imports are relative), whatever the directory is named and whatever Ansible's collection
   finder does with ``ansible_collections.*`` in the same process.
2. **Extract** the sysctls a task, a Compose file or a Kubernetes manifest asks for, with the
   context a verdict needs (runtimes, namespaces shared with the host, where to fix it).
3. **Report**: a base rule that turns verdicts into ansible-lint matches (message, remediation
   in ``details``, one sub-tag per key, a ``helpUri`` on this collection's docs, ``--fix``).

Options come from the environment because ansible-lint's config refuses per-rule keys:
``NSGUARD_SYSCTL_KERNEL_FLOOR`` (default 4.18), ``NSGUARD_SYSCTL_K8S_VERSION`` (the oldest
kubelet, default: the newest safe set), ``NSGUARD_SYSCTL_KNOWLEDGE_DIRS`` (extra
knowledge directories, ``os.pathsep``-separated) and ``NSGUARD_SYSCTL_DOCS_BASE_URL`` (the
collection-wide docs base; see ``report.docs_base_url``).
"""
from __future__ import annotations

import collections
import functools
import importlib
import importlib.util
import os
import sys
import threading
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, List, Mapping, MutableMapping, MutableSequence, Optional, Sequence, Tuple

from ansiblelint.errors import MatchError, RuleMatchTransformMeta
from ansiblelint.rules import AnsibleLintRule, TransformMixin

ENGINE = "nsguard_sysctl_engine"  # the collection's plugins/ directory, under a name of its own
HERE = Path(__file__).resolve().parent
# Where SARIF helpUri and the rule's url point: <base><rule-id>.md (docs/rules/ of this collection).
KNOWLEDGE_DIRS_ENV = "NSGUARD_SYSCTL_KNOWLEDGE_DIRS"
SKIPPED_RULES_KEY = "__skipped_rules__"  # where ansible-lint puts a task's `# noqa` ids


# --------------------------------------------------------------------------------------------
# 1. Finding the engine
# --------------------------------------------------------------------------------------------
def collection_root() -> Path:
    """The collection whose engine and knowledge these rules use."""
    vendored = HERE / "_collection"
    if (vendored / "plugins" / "plugin_utils").is_dir():
        return vendored
    return HERE.parent.parent


def _engine_package() -> types.ModuleType:
    """``<collection>/plugins`` as the package :data:`ENGINE`, loaded once from its file.

    The engine imports only itself (relative imports within ``plugins/``: plugin_utils and the
    two import-free module_utils readers it shares with the target), so any package name serves,
    and one of its own keeps it clear of ``ansible_collections.*``, which Ansible's collection
    finder owns inside ansible-lint. Its submodules are then plain imports.
    """
    package = sys.modules.get(ENGINE)
    if package is None:
        init = collection_root() / "plugins" / "__init__.py"
        spec = importlib.util.spec_from_file_location(ENGINE, init, submodule_search_locations=[str(init.parent)])
        package = importlib.util.module_from_spec(spec)
        sys.modules[ENGINE] = package
        spec.loader.exec_module(package)
    return package


def engine_module(name: str) -> types.ModuleType:
    """``plugin_utils.<name>`` of this collection's engine."""
    _engine_package()
    return importlib.import_module("%s.plugin_utils.%s" % (ENGINE, name))


@functools.lru_cache(maxsize=None)
def engine() -> types.ModuleType:
    """``static_judge`` of the collection these rules ship with (:func:`collection_root`)."""
    return engine_module("static_judge")


@dataclass(frozen=True)
class Setup:
    """The knowledge base and options, or the error that prevents judging anything."""

    kb: Any = None
    floor: str = ""
    error: Optional[str] = None
    k8s: Optional[str] = None  # the Kubernetes version option, normalised ("1.29"), or None


@functools.lru_cache(maxsize=None)
def setup() -> Setup:
    """Load the knowledge base once per process; a bad file or option becomes ``Setup.error``."""
    try:
        judge = engine()
        knowledge = engine_module("knowledge")
        floor = judge.parse_floor()
        k8s = judge.parse_k8s()
        extra = [p for p in os.environ.get(KNOWLEDGE_DIRS_ENV, "").split(os.pathsep) if p]
        kb = knowledge.load_knowledge(extra_dirs=extra) if extra else knowledge.load_knowledge()
        return Setup(kb=kb, floor=floor, k8s="%d.%d" % k8s if k8s else "")
    except Exception as exc:  # noqa: BLE001 - any failure here must name itself, not crash ansible-lint
        where = collection_root()
        return Setup(error=f"nsguard.sysctl rules cannot judge sysctls (collection at {where}): "
                           f"{type(exc).__name__}: {exc}")


def docs_url(rule_id: str) -> str:
    """The page of ``rule_id``: ``report.rule_help_uri`` with the collection's one docs base
    (``report.docs_base_url``: ``$NSGUARD_SYSCTL_DOCS_BASE_URL``, else this collection's own
    ``docs/`` as a ``file://`` URL), the same link the fleet reports give."""
    try:
        report = engine_module("report")
        return report.rule_help_uri(rule_id, report.docs_base_url(collection_root()))
    except Exception:  # the engine's own error is reported by the rules' setup match
        return collection_root().as_uri() + "/docs/rules/" + rule_id + ".md"


# --------------------------------------------------------------------------------------------
# 2. Extraction: which sysctls does a spec ask for, and in what context
# --------------------------------------------------------------------------------------------
# The vocabulary (module names, pod-template paths, runtime paths, docker/podman command
# lines) lives in plugin_utils/container_specs.py, shared with the rest of the collection.
_VOCABULARY = ("DOCKER_CONTAINER", "PODMAN_CONTAINER", "PODMAN_POD", "SWARM_SERVICE", "COMPOSE_V2", "K8S",
               "POSIX_SYSCTL", "COMMAND_MODULES", "CONTAINER_CONNECTIONS", "CONTAINER_MODULES",
               "K8S_DEFINITION_OPTIONS", "POD_SPEC_PATHS")
PLAY_TASK_LISTS = ("pre_tasks", "tasks", "post_tasks", "handlers")
BLOCK_LISTS = ("block", "rescue", "always")


@functools.lru_cache(maxsize=None)
def specs() -> types.ModuleType:
    """``container_specs`` of this collection's engine."""
    return engine_module("container_specs")


def __getattr__(name: str) -> Any:  # the vocabulary, for code that read it from here
    if name in _VOCABULARY:
        return getattr(specs(), name)
    raise AttributeError(name)


@dataclass(frozen=True)
class Item:
    """One sysctl that one spec asks for."""

    raw_key: Any                  # as written; what --fix looks for
    key: Optional[str]            # dotted form, None when it cannot be judged (templated)
    value: Any
    node: Any                     # the YAML node carrying the line number
    ctx: Any                      # static_judge.SpecContext
    path: Tuple[Any, ...]         # from the task's module arguments / the document to the sysctls


def _is_true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "yes"))


def _is_host(value: Any) -> bool:
    return specs().is_host(value)


def iter_sysctls(container: Any) -> Iterator[Tuple[Any, Any, Any]]:
    """``(raw_key, value, node)`` for a mapping, a ``["k=v"]`` list or a ``[{name, value}]`` list.

    Anything else (a template string, a number) yields nothing: it cannot be judged statically.
    """
    if isinstance(container, Mapping):
        for key, value in container.items():
            if isinstance(key, str) and key.startswith("__"):
                continue  # ansible-lint's own bookkeeping (__file__, __line__)
            yield key, value, key
    elif isinstance(container, (list, tuple)):
        for element in container:
            if isinstance(element, str) and "=" in element:
                key, dummy, value = element.partition("=")
                yield key.strip(), value.strip(), element
            elif isinstance(element, Mapping) and "name" in element:
                yield element.get("name"), element.get("value"), element


def _items(container: Any, path: Tuple[Any, ...], ctx: Any) -> List[Item]:
    judge = engine()
    return [Item(raw, judge.normalize_key(raw), value, node, ctx, path)
            for raw, value, node in iter_sysctls(container)]


def _label(kind: str, name: Any) -> str:
    return f"{kind} '{name}'" if isinstance(name, str) and name and not engine().is_templated(name) else kind


def task_items(action: Mapping[str, Any]) -> List[Item]:
    """The sysctls a container task asks for (``task["action"]`` as ansible-lint normalizes it)."""
    sp = specs()
    module = action.get("__ansible_module__")
    if module not in sp.CONTAINER_MODULES and module not in sp.COMMAND_MODULES:
        return []
    judge = engine()
    args = {k: v for k, v in action.items() if not (isinstance(k, str) and k.startswith("__"))}
    name = args.get("name")
    if module in sp.COMMAND_MODULES:
        return command_items(sp.command_text(args), name)
    if module in sp.DOCKER_CONTAINER or module in sp.SWARM_SERVICE:
        hostns = set()
        bridge = False
        if module in sp.DOCKER_CONTAINER:
            hostns = {ns for ns, opt in (("net", "network_mode"), ("ipc", "ipc_mode"), ("uts", "uts"))
                      if _is_host(args.get(opt))}
            bridge = sp.docker_bridge(args.get("network_mode"))
        elif _is_host(args.get("networks")):
            hostns = {"net"}
        kind = "docker_container" if module in sp.DOCKER_CONTAINER else "docker_swarm_service"
        ctx = judge.SpecContext(runtimes=sp.PATH_DOCKER_API, host_namespaces=frozenset(hostns),
                                where=f"the {_label(kind, name)} task", docker_bridge=bridge)
        option = sp.sysctl_option(module)
        return _items(args.get(option), (option,), ctx)
    if module in sp.PODMAN_CONTAINER or module in sp.PODMAN_POD:
        network = next((args[o] for o in ("network", "net", "network_mode") if o in args), None)
        ipc = next((args[o] for o in ("ipc", "ipc_mode") if o in args), None)
        hostns = {ns for ns, val in (("net", network), ("ipc", ipc), ("uts", args.get("uts"))) if _is_host(val)}
        joined = frozenset({"net"} if sp.joins_host_netns(network) else ())
        kind = "podman_container" if module in sp.PODMAN_CONTAINER else "podman_pod"
        ctx = judge.SpecContext(runtimes=sp.PATH_PODMAN, host_namespaces=frozenset(hostns) | joined,
                                where=f"the {_label(kind, name)} task", joined_by_path=joined)
        option = sp.sysctl_option(module)
        return _items(args.get(option), (option,), ctx)
    if module in sp.COMPOSE_V2:
        return compose_items(args.get("definition"), ("definition",), runtimes=sp.PATH_DOCKER_API)
    for option in sp.K8S_DEFINITION_OPTIONS:
        if option in args:
            return k8s_items(args[option], (option,))
    return []


def command_items(command: Any, task_name: Any = None) -> List[Item]:
    """The ``--sysctl`` of every ``docker run``/``podman run`` in a command or shell task: the
    CLI's own checks apply (the docker CLI's allowlist, worded per client version)."""
    judge = engine()
    items: List[Item] = []
    for run in specs().cli_runs(command):
        where = f"the `{run.tool} run` of the {_label('task', task_name)}".replace("task '", "'")
        ctx = judge.SpecContext(runtimes=run.path, host_namespaces=run.host_namespaces, where=where)
        for key, value in run.sysctls:
            items.append(Item(key, judge.normalize_key(key), value, command, ctx, ()))
    return items


def compose_items(doc: Any, prefix: Tuple[Any, ...] = (), runtimes: Optional[Tuple[str, ...]] = None) -> List[Item]:
    """The sysctls of every service of a Compose document (``services.<name>.sysctls``): the
    Docker Engine API (docker compose) or podman (podman-compose) runs it."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("services"), Mapping):
        return []
    judge = engine()
    runtimes = runtimes or specs().PATH_COMPOSE
    items: List[Item] = []
    for service, spec in doc["services"].items():
        if not isinstance(spec, Mapping) or (isinstance(service, str) and service.startswith("__")):
            continue
        hostns = {ns for ns, opt in (("net", "network_mode"), ("ipc", "ipc"), ("uts", "uts")) if _is_host(spec.get(opt))}
        ctx = judge.SpecContext(runtimes=runtimes, host_namespaces=frozenset(hostns),
                                where=f"Compose service '{service}'",
                                docker_bridge=specs().docker_bridge(spec.get("network_mode")))
        items.extend(_items(spec.get("sysctls"), prefix + ("services", service, "sysctls"), ctx))
    return items


def is_compose(doc: Any) -> bool:
    return isinstance(doc, Mapping) and isinstance(doc.get("services"), Mapping) and "apiVersion" not in doc


def is_k8s(doc: Any) -> bool:
    return isinstance(doc, Mapping) and isinstance(doc.get("kind"), str) and "apiVersion" in doc


def _dig(doc: Any, path: Sequence[Any]) -> Any:
    for part in path:
        if not isinstance(doc, Mapping):
            return None
        doc = doc.get(part)
    return doc


def k8s_items(doc: Any, prefix: Tuple[Any, ...] = ()) -> List[Item]:
    """The ``securityContext.sysctls`` of every Pod template in a manifest (a dict, a list, a List)."""
    if isinstance(doc, str):
        return []  # a YAML string or a template: lookups and files are linted where they live
    if isinstance(doc, (list, tuple)):
        return [i for n, d in enumerate(doc) for i in k8s_items(d, prefix + (n,))]
    if not is_k8s(doc):
        return []
    if doc["kind"].endswith("List") and isinstance(doc.get("items"), list):
        return k8s_items(doc["items"], prefix + ("items",))
    sp = specs()
    spec_path, pod = sp.pod_spec(doc)
    if pod is None:
        return []
    hostns = {ns for ns, opt in sp.POD_HOST_NAMESPACES if _is_true(pod.get(opt))}
    name = _dig(doc, ("metadata", "name"))
    ctx = engine().SpecContext(runtimes=sp.PATH_KUBELET, host_namespaces=frozenset(hostns), kubelet=True,
                               oci=sp.KUBELET_OCI, where=f"the {_label(doc['kind'], name)} pod spec")
    return _items(_dig(pod, ("securityContext", "sysctls")),
                  prefix + tuple(spec_path) + ("securityContext", "sysctls"), ctx)


def _connection(node: Mapping[str, Any], inherited: Optional[str]) -> Optional[str]:
    conn = node.get("connection")
    varz = node.get("vars")
    if isinstance(varz, Mapping) and isinstance(varz.get("ansible_connection"), str):
        conn = varz["ansible_connection"]
    return conn if isinstance(conn, str) else inherited


def _task_module(task: Mapping[str, Any]) -> Optional[str]:
    return next((k for k in task if k in specs().POSIX_SYSCTL), None)


def _module_args(task: Mapping[str, Any], module: str) -> Mapping[str, Any]:
    args = task.get(module)
    if isinstance(args, str):  # free form: name=vm.swappiness value=10
        args = dict(part.split("=", 1) for part in args.split() if "=" in part)
    merged = dict(task.get("args") or {}) if isinstance(task.get("args"), Mapping) else {}
    if isinstance(args, Mapping):
        merged.update(args)
    return merged


def connection_items(play: Mapping[str, Any]) -> List[Tuple[Item, Mapping[str, Any]]]:
    """``ansible.posix.sysctl`` tasks that run inside a container (a container connection).

    Returns ``(item, task)`` pairs; the task is needed for its ``# noqa`` list and its line.
    """
    judge = engine()
    found: List[Tuple[Item, Mapping[str, Any]]] = []

    def walk(tasks: Any, conn: Optional[str]) -> None:
        if not isinstance(tasks, list):
            return
        for task in tasks:
            if not isinstance(task, Mapping):
                continue
            here = _connection(task, conn)
            if any(k in task for k in BLOCK_LISTS):
                for key in BLOCK_LISTS:
                    walk(task.get(key), here)
                continue
            module = _task_module(task)
            if module is None or here not in specs().CONTAINER_CONNECTIONS or "delegate_to" in task:
                continue
            args = _module_args(task, module)
            raw = args.get("name", args.get("key"))
            if raw is None or args.get("state") == "absent":
                continue
            ctx = judge.SpecContext(direct_write=True,
                                    where=f"this task, which runs inside the container (connection {here})")
            item = Item(raw, judge.normalize_key(raw), args.get("value", args.get("val")), task, ctx, ())
            found.append((item, task))

    if isinstance(play, Mapping):
        conn = _connection(play, None)
        for key in PLAY_TASK_LISTS:
            walk(play.get(key), conn)
    return found


def line_of(node: Any, default: int = 1) -> int:
    """The line of a YAML node as ansible-lint loaded it (a tagged key, a mapping)."""
    try:
        from ansiblelint.yaml_utils import get_line_column

        return int(get_line_column(node, default_line=default)[0]) or default
    except Exception:  # noqa: BLE001 - untagged plain values have no origin
        return default


@functools.lru_cache(maxsize=4096)
def _verdicts(key: Any, ctx: Any, floor: str, value: Optional[str], k8s: str = "") -> Tuple[Any, ...]:
    state = setup()
    return tuple(engine().assess(state.kb, key, ctx, floor=floor, value=value, k8s=k8s))


def judged(items: Sequence[Item]) -> Iterator[Tuple[Item, Any]]:
    """``(item, verdict)`` for every problem of every judgeable item."""
    state = setup()
    if state.error:
        return
    for item in items:
        if item.key is None:
            continue
        value = str(item.value) if isinstance(item.value, (str, int, float)) else None
        # The key as written: its spelling ('/' separators, dotted interface names) matters.
        raw = item.raw_key if isinstance(item.raw_key, str) else item.key
        for verdict in _verdicts(raw, item.ctx, state.floor, value, state.k8s or ""):
            yield item, verdict


_TASK_CACHE: "collections.OrderedDict[Tuple[str, int], List[Tuple[Any, List[Item]]]]" = collections.OrderedDict()
_TASK_CACHE_LOCK = threading.Lock()
_ACTION_KEYS = ("action", "local_action")


def _maybe_container_task(raw: Any) -> bool:
    """Cheap test on the raw task, before ansible-lint normalizes it (the expensive part)."""
    if not isinstance(raw, Mapping):
        return False
    sp = specs()
    if any(key in sp.CONTAINER_MODULES for key in raw):
        return True
    if any(key in sp.COMMAND_MODULES for key in raw):
        return "--sysctl" in str(raw)  # only a docker/podman run with sysctls is worth normalizing
    return any(key in raw for key in _ACTION_KEYS)


def _may_hold_container_task(data: Any) -> bool:
    """Whether any mapping anywhere in a file's raw data passes :func:`_maybe_container_task`.

    ansible-lint's ``task_in_list`` normalizes every task it yields (a deep copy of each), which
    was two thirds of the time inside these rules on small playbooks that start no container.
    Every task it yields is one of the file's mappings, so a file where no mapping passes the
    cheap test has no container task, and is not normalized at all.
    """
    pending = [data]
    while pending:
        node = pending.pop()
        if isinstance(node, Mapping):
            if _maybe_container_task(node):
                return True
            pending.extend(node.values())
        elif isinstance(node, (list, tuple)):
            pending.extend(node)
    return False


def container_tasks(file: Any) -> List[Tuple[Any, List[Item]]]:
    """``(task, items)`` for every container task of a tasks/playbook file, once per file content.

    ansible-lint runs every rule on a file before the next file, so a few entries are enough.
    """
    from ansiblelint.utils import task_in_list

    key = (str(file.path), hash(file.content))
    with _TASK_CACHE_LOCK:
        if key in _TASK_CACHE:
            return _TASK_CACHE[key]
    found: List[Tuple[Any, List[Item]]] = []
    data = file.data
    tasks = task_in_list(data=data, kind=file.kind, file=file) if _may_hold_container_task(data) else ()
    for task in tasks:
        if task.error is not None or not _maybe_container_task(task.raw_task):
            continue
        action = task.normalized_task.get("action")
        module = action.get("__ansible_module__") if isinstance(action, Mapping) else None
        if module not in specs().CONTAINER_MODULES and module not in specs().COMMAND_MODULES:
            continue
        items = task_items(action)
        if items:
            found.append((task, items))
    with _TASK_CACHE_LOCK:
        _TASK_CACHE[key] = found
        while len(_TASK_CACHE) > 8:
            _TASK_CACHE.popitem(last=False)
    return found


# --------------------------------------------------------------------------------------------
# 3. Reporting
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SysctlFix(RuleMatchTransformMeta):
    """What ``--fix`` removes: ``raw_key`` from the sysctls at ``path``."""

    raw_key: str
    path: Tuple[Any, ...]
    module: Optional[str] = None  # the module key of a task, as written; None for documents


def remove_sysctl(container: Any, raw_key: str) -> bool:
    """Delete one sysctl from a mapping or a list of ``k=v`` / ``{name, value}``; True if removed."""
    judge = engine()
    wanted = judge.normalize_key(raw_key) or str(raw_key)
    if isinstance(container, MutableMapping):
        for key in list(container):
            if key == raw_key or judge.normalize_key(key) == wanted:
                del container[key]
                return True
    elif isinstance(container, MutableSequence):
        for index, (key, _value, _node) in enumerate(iter_sysctls(container)):
            if key == raw_key or judge.normalize_key(key) == wanted:
                # iter_sysctls skips malformed elements; find the real index of this one.
                real = [n for n, e in enumerate(container)
                        if (isinstance(e, str) and "=" in e) or (isinstance(e, Mapping) and "name" in e)][index]
                del container[real]
                return True
    return False


class SysctlRule(AnsibleLintRule):
    """Base of the nsguard.sysctl rules; a subclass sets ``id`` and the verdict ``reasons`` it reports."""

    reasons: frozenset = frozenset()
    version_changed = "0.1.0"
    _setup_reported = False  # the setup error is reported once per process, by the first rule

    @property
    def url(self) -> str:  # ansible-lint ignores `link`; SARIF helpUri comes from here
        return docs_url(self.id)

    # -- matching -----------------------------------------------------------------------------
    def _setup_error(self, file: Any) -> List[MatchError]:
        state = setup()
        if not state.error or SysctlRule._setup_reported:
            return []
        SysctlRule._setup_reported = True
        return [self.create_matcherror(message=state.error, filename=file, tag=f"{self.id}[setup]")]

    def _match(self, item: Item, verdict: Any, file: Any, lineno: int, fix: Optional[SysctlFix]) -> MatchError:
        tag = f"{self.id}[{verdict.key}]"
        details = engine().remediation(verdict, item.value, self.id)
        return self.create_matcherror(message=verdict.message, details=details, lineno=lineno,
                                      filename=file, tag=tag, transform_meta=fix)

    def matchlines(self, file: Any) -> List[MatchError]:
        return []  # no line-based checks: skip ansible-lint's per-line loop for every rule

    def matchtasks(self, file: Any) -> List[MatchError]:
        """Like ansible-lint's ``matchtasks``, on the container tasks of the file only.

        The base implementation normalizes every task for every rule; the six rules here share
        one pass per file (:func:`container_tasks`) that normalizes only container tasks.
        """
        if file.kind not in ("handlers", "tasks", "playbook") or str(file.base_kind) != "text/yaml":
            return []
        errors = self._setup_error(file)
        for task, items in container_tasks(file):
            if self.id in task.skip_tags or "skip_ansible_lint" in (task.normalized_task.get("tags") or []):
                continue
            module = task["action"].get("__ansible_module_original__")
            for item, verdict in judged(items):
                if verdict.reason not in self.reasons or f"{self.id}[{verdict.key}]" in task.skip_tags:
                    continue
                fix = SysctlFix(str(item.raw_key), item.path, module) if isinstance(item.raw_key, str) else None
                match = self._match(item, verdict, file, line_of(item.node, task.line), fix)
                self._enrich_matcherror_with_task_details(match, task)
                errors.append(match)
        return errors

    def matchyaml(self, file: Any) -> List[MatchError]:
        if str(file.base_kind) != "text/yaml" or file.kind not in ("yaml", "playbook"):
            return []
        data = file.data
        if not data or isinstance(data, str):
            return []
        errors = self._setup_error(file)
        single = isinstance(data, Mapping)  # --fix can rewrite single-document files only
        docs = [data] if single else list(data)
        for doc in docs:
            if not isinstance(doc, Mapping):
                continue
            if file.kind == "playbook":
                errors.extend(self._match_play(file, doc))
            elif is_compose(doc) or is_k8s(doc):
                # ansible-lint attaches every `# noqa` of a generic YAML file to the whole
                # document; here a noqa counts on its own line only, like on a task.
                errors.extend(self._match_document(file, doc, single))
        return errors

    def _skipped(self, file: Any, lineno: int, tag: str) -> bool:
        skips = file.line_skips.get(lineno, ())
        return self.id in skips or tag in skips

    def _match_document(self, file: Any, doc: Mapping[str, Any], single: bool) -> List[MatchError]:
        items = compose_items(doc) if is_compose(doc) else k8s_items(doc)
        errors = []
        for item, verdict in judged(items):
            if verdict.reason not in self.reasons:
                continue
            lineno = line_of(item.node, line_of(doc))
            if self._skipped(file, lineno, f"{self.id}[{verdict.key}]"):
                continue
            fix = SysctlFix(str(item.raw_key), item.path) if single and isinstance(item.raw_key, str) else None
            match = self._match(item, verdict, file, lineno, fix)
            if fix is not None:
                match.yaml_path = list(item.path)
            errors.append(match)
        return errors

    def _match_play(self, file: Any, play: Mapping[str, Any]) -> List[MatchError]:
        errors = []
        for item, task in connection_items(play):
            for _item, verdict in judged([item]):
                tag = f"{self.id}[{verdict.key}]"
                if verdict.reason not in self.reasons or {self.id, tag} & set(task.get(SKIPPED_RULES_KEY) or ()):
                    continue
                errors.append(self._match(item, verdict, file, line_of(task), None))
        return errors


class SysctlFixRule(SysctlRule, TransformMixin):
    """A rule whose ``--fix`` removes the key from the container spec (the key is never the container's)."""

    def transform(self, match: MatchError, lintable: Any, data: Any) -> None:
        fix = match.transform_meta
        if not isinstance(fix, SysctlFix):
            return
        if fix.module is None:  # a Compose file or manifest: yaml_path leads to the sysctls
            container = self.seek(match.yaml_path, data)
        else:  # a task: yaml_path leads to the task, the rest is below the module's arguments
            task = self.seek(match.yaml_path, data)
            args = task.get(fix.module) if isinstance(task, Mapping) else None
            if not (isinstance(args, Mapping) and fix.path and fix.path[0] in args):
                args = task.get("args") if isinstance(task, Mapping) else None
            container = _dig_any(args, fix.path)
        if remove_sysctl(container, fix.raw_key):
            match.fixed = True


def _dig_any(node: Any, path: Sequence[Any]) -> Any:
    for part in path:
        if isinstance(part, int) and isinstance(node, Sequence) and not isinstance(node, str) and part < len(node):
            node = node[part]
        elif isinstance(node, Mapping) and part in node:
            node = node[part]
        else:
            return None
    return node
