"""Render a kustomization the way ``kustomize build`` does, for the features deploy/k8s uses.

kustomize is not installed on these machines, so the tests render the overlays with this loader. It
supports exactly these kustomization fields, and raises ``UnsupportedError`` for any other, so a manifest
can never silently render differently here than under ``kubectl apply -k``:

- ``resources``: YAML files (several documents each) and folders holding a kustomization.yaml;
- ``namespace``: set on every namespaced object, and as the name of ``Namespace`` objects (as
  kustomize does);
- ``labels`` with ``includeSelectors: false``: added to every object's labels and, with
  ``includeTemplates: true``, to pod templates (CronJobs: the job template and its pod template);
- ``images``: ``name`` matched against container and init container images, ``newName``, ``newTag``,
  ``digest``;
- ``patches``: a strategic-merge patch (one object per entry, target taken from its kind and name;
  maps merge, ``null`` deletes a key, ``containers``/``initContainers``/``env``/``volumes`` merge by
  ``name`` and ``volumeMounts`` by ``mountPath``, other lists are replaced), or a JSON 6902 patch
  (``add``, ``remove``, ``replace``) with a ``target`` of kind and name, from ``path`` or inline
  ``patch``.

Transformers run in kustomize's order: patches, namespace, labels, images.

``python -m tests.deploy.k8s_render deploy/k8s/overlays/staging`` prints the rendered YAML: what
``kubectl kustomize`` prints, up to the order of objects (kustomize sorts them by kind) and of keys.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SUPPORTED_FIELDS = {"apiVersion", "kind", "resources", "namespace", "labels", "images", "patches"}
CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "IngressClass",
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
}
# kinds whose spec.template is a pod template
TEMPLATED = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
# lists a strategic-merge patch merges item by item, and the key that matches the items
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
}
# lists Kubernetes merges by a key this loader does not handle: patching them is refused, not guessed
UNSUPPORTED_MERGE_LISTS = {
    "ports",
    "imagePullSecrets",
    "ephemeralContainers",
    "topologySpreadConstraints",
    "hostAliases",
    "volumeDevices",
    "resourceClaims",
    "conditions",
}


class UnsupportedError(ValueError):
    """The kustomization uses a feature this loader does not render (kustomize might)."""


class RenderError(ValueError):
    """The kustomization is wrong in a way kustomize would refuse too."""


def render(path: str | Path) -> list[Obj]:
    """The objects ``kustomize build path`` would print, in resource order."""
    return _build(Path(path).resolve(), seen=())


def _build(folder: Path, seen: tuple[Path, ...]) -> list[Obj]:
    if folder in seen:
        raise RenderError(f"{folder}: kustomizations include each other in a cycle")
    kustomization = _kustomization_file(folder)
    spec = yaml.safe_load(kustomization.read_text(encoding="utf-8")) or {}
    unknown = set(spec) - SUPPORTED_FIELDS
    if unknown:
        raise UnsupportedError(f"{kustomization}: fields not supported by this loader: {sorted(unknown)}")
    if spec.get("kind", "Kustomization") != "Kustomization":
        raise UnsupportedError(f"{kustomization}: kind {spec['kind']!r} (only Kustomization)")

    objects: list[Obj] = []
    for entry in spec.get("resources") or []:
        target = (folder / entry).resolve()
        if target.is_dir():
            objects.extend(_build(target, (*seen, folder)))
        elif target.is_file():
            objects.extend(load_documents(target))
        else:
            raise RenderError(f"{kustomization}: resource {entry!r} does not exist")
    _check_unique(objects, kustomization)

    for patch in spec.get("patches") or []:
        _apply_patch(objects, patch, folder, kustomization)
    if spec.get("namespace"):
        _set_namespace(objects, spec["namespace"])
    for labels in spec.get("labels") or []:
        _add_labels(objects, labels, kustomization)
    for image in spec.get("images") or []:
        _set_image(objects, image, kustomization)
    return objects


def _kustomization_file(folder: Path) -> Path:
    for name in KUSTOMIZATION_FILES:
        if (folder / name).is_file():
            return folder / name
    raise RenderError(f"{folder}: no kustomization.yaml")


def load_documents(path: Path) -> list[Obj]:
    """The non-empty YAML documents of a file, each checked to look like a Kubernetes object."""
    documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    for document in documents:
        if not isinstance(document, dict) or not {"apiVersion", "kind", "metadata"} <= set(document):
            raise RenderError(f"{path}: a document without apiVersion, kind and metadata")
    return documents


def object_id(obj: Obj) -> tuple[str, str, str]:
    return obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def _check_unique(objects: list[Obj], where: Path) -> None:
    ids = [object_id(o) for o in objects]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise RenderError(f"{where}: the same object twice: {duplicates}")


# --- patches --------------------------------------------------------------------------------------


def _apply_patch(objects: list[Obj], entry: Obj, folder: Path, where: Path) -> None:
    if not isinstance(entry, dict) or not set(entry) <= {"path", "patch", "target"}:
        raise UnsupportedError(f"{where}: patch entry {entry!r} (only path, patch and target)")
    if ("path" in entry) == ("patch" in entry):
        raise RenderError(f"{where}: a patch needs exactly one of path and patch")
    text = (folder / entry["path"]).read_text(encoding="utf-8") if "path" in entry else entry["patch"]
    documents = [d for d in yaml.safe_load_all(text) if d is not None]
    target = entry.get("target")
    if target is not None and not set(target) <= {"kind", "name"}:
        raise UnsupportedError(f"{where}: patch target {target!r} (only kind and name)")
    if len(documents) == 1 and isinstance(documents[0], list):
        if target is None:
            raise RenderError(f"{where}: a JSON 6902 patch needs a target")
        for obj in _targets(objects, target, where):
            _json6902(obj, documents[0], where)
        return
    if len(documents) != 1 or not isinstance(documents[0], dict):
        # kustomize before 5.1 (kubectl before 1.29) refuses several patches in one entry: so do we
        raise UnsupportedError(
            f"{where}: {entry.get('path', 'inline patch')}: one strategic-merge patch per entry"
        )
    patch = documents[0]
    if target is None:
        target = {"kind": patch.get("kind"), "name": (patch.get("metadata") or {}).get("name")}
    for obj in _targets(objects, target, where):
        merged = strategic_merge(obj, patch)
        obj.clear()
        obj.update(merged)


def _targets(objects: list[Obj], target: Obj, where: Path) -> list[Obj]:
    found = [
        o
        for o in objects
        if o["kind"] == target.get("kind", o["kind"]) and o["metadata"]["name"] == target.get("name")
    ]
    if not found:
        raise RenderError(f"{where}: no object matches the patch target {target}")
    return found


def strategic_merge(base: Any, patch: Any, field: str = "") -> Any:
    """``patch`` merged into a copy of ``base`` as a strategic-merge patch (the subset above)."""
    if isinstance(patch, dict):
        if any(str(k).startswith("$") for k in patch):
            raise UnsupportedError(
                f"strategic-merge directives ({[k for k in patch if str(k).startswith('$')]})"
            )
        out = copy.deepcopy(base) if isinstance(base, dict) else {}
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = strategic_merge(out[key], value, key)
            else:
                out[key] = copy.deepcopy(value)
        return out
    if isinstance(patch, list) and isinstance(base, list):
        if field in UNSUPPORTED_MERGE_LISTS:
            raise UnsupportedError(
                f"patching the list {field!r} (Kubernetes merges it by a key not handled here)"
            )
        key = MERGE_KEYS.get(field)
        if key is None:
            return copy.deepcopy(patch)
        out = copy.deepcopy(base)
        for item in patch:
            if not isinstance(item, dict) or key not in item:
                raise RenderError(f"an item of {field!r} in a patch has no {key!r}")
            match = next((i for i, b in enumerate(out) if b.get(key) == item[key]), None)
            if match is None:
                out.append(copy.deepcopy(item))
            else:
                out[match] = strategic_merge(out[match], item, field)
        return out
    return copy.deepcopy(patch)


def _json6902(obj: Obj, operations: list[Obj], where: Path) -> None:
    for operation in operations:
        op = operation.get("op")
        if op not in ("add", "remove", "replace"):
            raise UnsupportedError(f"{where}: JSON 6902 op {op!r} (only add, remove, replace)")
        parts = [p.replace("~1", "/").replace("~0", "~") for p in operation["path"].split("/")[1:]]
        if not parts:
            raise RenderError(f"{where}: JSON 6902 path {operation['path']!r}")
        parent: Any = obj
        for part in parts[:-1]:
            parent = _step(parent, part, operation["path"], where)
        last = parts[-1]
        if isinstance(parent, list):
            if op == "add" and last == "-":
                parent.append(copy.deepcopy(operation["value"]))
                continue
            index = _index(parent, last, operation["path"], where, allow_end=op == "add")
            if op == "add":
                parent.insert(index, copy.deepcopy(operation["value"]))
            elif op == "remove":
                parent.pop(index)
            else:
                parent[index] = copy.deepcopy(operation["value"])
        elif isinstance(parent, dict):
            if op != "add" and last not in parent:
                raise RenderError(f"{where}: JSON 6902 {op} of a missing path {operation['path']!r}")
            if op == "remove":
                del parent[last]
            else:
                parent[last] = copy.deepcopy(operation["value"])
        else:
            raise RenderError(f"{where}: JSON 6902 path {operation['path']!r} goes through a scalar")


def _step(node: Any, part: str, path: str, where: Path) -> Any:
    if isinstance(node, dict) and part in node:
        return node[part]
    if isinstance(node, list):
        return node[_index(node, part, path, where, allow_end=False)]
    raise RenderError(f"{where}: JSON 6902 path {path!r} does not exist")


def _index(items: list[Any], part: str, path: str, where: Path, allow_end: bool) -> int:
    if not part.isdigit() or int(part) > len(items) or (int(part) == len(items) and not allow_end):
        raise RenderError(f"{where}: JSON 6902 path {path!r}: no item {part}")
    return int(part)


# --- namespace, labels, images --------------------------------------------------------------------


def _set_namespace(objects: list[Obj], namespace: str) -> None:
    for obj in objects:
        if obj["kind"] == "Namespace":
            obj["metadata"]["name"] = namespace
        elif obj["kind"] in ("RoleBinding", "ClusterRoleBinding"):
            raise UnsupportedError("namespace with RoleBindings (kustomize rewrites their subjects)")
        elif obj["kind"] not in CLUSTER_SCOPED:
            obj["metadata"]["namespace"] = namespace


def pod_templates(obj: Obj) -> list[Obj]:
    """The pod templates of a workload (a CronJob's is inside its job template)."""
    if obj["kind"] in TEMPLATED:
        return [obj["spec"]["template"]]
    if obj["kind"] == "CronJob":
        return [obj["spec"]["jobTemplate"]["spec"]["template"]]
    return []


def _add_labels(objects: list[Obj], entry: Obj, where: Path) -> None:
    if not set(entry) <= {"pairs", "includeSelectors", "includeTemplates"}:
        raise UnsupportedError(f"{where}: labels entry fields {sorted(entry)}")
    if entry.get("includeSelectors"):
        raise UnsupportedError(
            f"{where}: labels with includeSelectors: true (selectors are not rewritten here)"
        )
    pairs = {str(k): str(v) for k, v in entry["pairs"].items()}
    for obj in objects:
        obj["metadata"].setdefault("labels", {}).update(pairs)
        if entry.get("includeTemplates"):
            metas = [t.setdefault("metadata", {}) for t in pod_templates(obj)]
            if obj["kind"] == "CronJob":
                metas.append(obj["spec"]["jobTemplate"].setdefault("metadata", {}))
            for meta in metas:
                meta.setdefault("labels", {}).update(pairs)


def containers(obj: Obj) -> Iterable[Obj]:
    """Every container and init container of a workload."""
    for template in pod_templates(obj):
        spec = template["spec"]
        yield from spec.get("initContainers") or []
        yield from spec.get("containers") or []


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """(name, tag, digest) of an image reference; a registry port is not a tag."""
    name, _, digest = image.partition("@")
    tag = None
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    return name, tag, digest or None


def _set_image(objects: list[Obj], entry: Obj, where: Path) -> None:
    if not set(entry) <= {"name", "newName", "newTag", "digest"}:
        raise UnsupportedError(f"{where}: images entry fields {sorted(entry)}")
    for obj in objects:
        for container in containers(obj):
            name, tag, digest = split_image(container["image"])
            if name != entry["name"]:
                continue
            name = entry.get("newName", name)
            if "digest" in entry:
                container["image"] = f"{name}@{entry['digest']}"
                continue
            if "newTag" in entry:
                tag, digest = str(entry["newTag"]), None
            container["image"] = name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.deploy.k8s_render KUSTOMIZATION_FOLDER", file=sys.stderr)
        return 2
    print(yaml.safe_dump_all(render(argv[0]), sort_keys=False), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
