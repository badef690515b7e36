"""Renders the kustomizations under deploy/k8s/ without kubectl or kustomize (neither is installed here).

Only the subset of kustomize the manifests use, and anything else is refused rather than ignored:
`resources` (files and directories), `namespace`, `images`, `replicas`, `patches` (strategic-merge
files naming their target by apiVersion, kind and name; `$patch: delete` removes it) and
`configMapGenerator` (`files`, `literals`, `behavior`). Generated ConfigMaps get a content-hash
suffix, as kustomize gives them, and the references to them in pod specs follow.

`python -m deploy.k8s.render deploy/k8s/overlays/production` prints the rendered YAML;
`python -m deploy.k8s.render --sync-config` copies config/ to deploy/k8s/base/config/ (the ConfigMap's
source; a test fails when the two differ).
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # PyYAML ships no types (types-PyYAML is not pinned)

K8S = Path(__file__).resolve().parent
REPO = K8S.parent.parent
CONFIG_COPY = K8S / "base" / "config"

Object = dict[str, Any]
SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "images", "replicas", "patches", "configMapGenerator"}


@dataclass
class Rendered:
    objects: list[Object] = field(default_factory=list)
    generated: set[str] = field(default_factory=set)  # ConfigMaps to hash, by their name before the suffix


def render(root: Path) -> list[Object]:
    """The objects `kubectl kustomize root` would print (in resource order)."""
    rendered = _render(Path(root))
    return _hash_generated(rendered)


def _render(root: Path) -> Rendered:
    kustomization = yaml.safe_load((root / "kustomization.yaml").read_text(encoding="utf-8"))
    unknown = set(kustomization) - SUPPORTED
    if unknown:
        raise ValueError(f"{root}: kustomization fields this renderer does not implement: {sorted(unknown)}")
    out = Rendered()
    for entry in kustomization.get("resources", []):
        path = root / entry
        if path.is_dir():
            base = _render(path)
            out.objects += base.objects
            out.generated |= base.generated
        else:
            out.objects += [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    for generator in kustomization.get("configMapGenerator", []):
        _generate(root, generator, out)
    for patch in kustomization.get("patches", []):
        if set(patch) != {"path"}:
            raise ValueError(f"{root}: only patches given by path are implemented: {patch}")
        for doc in yaml.safe_load_all((root / patch["path"]).read_text(encoding="utf-8")):
            if doc:
                _apply_patch(out.objects, doc)
    for image in kustomization.get("images", []):
        _set_image(out.objects, image)
    for replicas in kustomization.get("replicas", []):
        target = _find(out.objects, None, "Deployment", replicas["name"])
        target["spec"]["replicas"] = replicas["count"]
    if "namespace" in kustomization:
        for obj in out.objects:
            obj.setdefault("metadata", {})["namespace"] = kustomization["namespace"]
    return out


def _generate(root: Path, generator: Object, out: Rendered) -> None:
    unknown = set(generator) - {"name", "files", "literals", "behavior"}
    if unknown:
        raise ValueError(f"{root}: configMapGenerator fields this renderer does not implement: {sorted(unknown)}")
    data: dict[str, str] = {}
    for entry in generator.get("files", []):
        key, _, path = entry.rpartition("=")
        source = root / path
        data[key or source.name] = source.read_text(encoding="utf-8")
    for literal in generator.get("literals", []):
        key, _, value = literal.partition("=")
        data[key] = value
    behavior = generator.get("behavior", "create")
    name = generator["name"]
    if behavior == "create":
        if name in out.generated:
            raise ValueError(f"{root}: ConfigMap {name} generated twice")
        out.objects.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
        out.generated.add(name)
    elif behavior in ("merge", "replace"):
        existing = _find(out.objects, "v1", "ConfigMap", name)
        existing["data"] = {**existing["data"], **data} if behavior == "merge" else data
    else:
        raise ValueError(f"{root}: unknown generator behavior {behavior}")


def _find(objects: list[Object], api_version: str | None, kind: str, name: str) -> Object:
    for obj in objects:
        if (
            obj["kind"] == kind
            and obj["metadata"]["name"] == name
            and (api_version is None or obj["apiVersion"] == api_version)
        ):
            return obj
    raise ValueError(f"no {kind} {name} to patch")


def _apply_patch(objects: list[Object], patch: Object) -> None:
    target = _find(objects, patch["apiVersion"], patch["kind"], patch["metadata"]["name"])
    if patch.get("$patch") == "delete":
        objects.remove(target)
        return
    merged = strategic_merge(target, patch)
    objects[objects.index(target)] = merged


def strategic_merge(base: Any, patch: Any) -> Any:
    """Maps merge key by key (null deletes); lists of named maps merge by name; other lists are replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = copy.deepcopy(base)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = strategic_merge(merged[key], value)
            else:
                merged[key] = copy.deepcopy(value)
        return merged
    if isinstance(base, list) and isinstance(patch, list) and _named(base) and _named(patch):
        merged_list = copy.deepcopy(base)
        names = [item["name"] for item in merged_list]
        for item in patch:
            if item["name"] in names:
                index = names.index(item["name"])
                merged_list[index] = strategic_merge(merged_list[index], item)
            else:
                merged_list.append(copy.deepcopy(item))
        return merged_list
    return copy.deepcopy(patch)


def _named(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(item, dict) and "name" in item for item in items)


def _set_image(objects: list[Object], image: Object) -> None:
    for container in _containers(objects):
        reference = container["image"]
        name = reference.split("@")[0]
        if ":" in name.rsplit("/", 1)[-1]:
            name = name.rsplit(":", 1)[0]
        if name != image["name"]:
            continue
        new = image.get("newName", name)
        if "digest" in image:
            container["image"] = f"{new}@{image['digest']}"
        elif "newTag" in image:
            container["image"] = f"{new}:{image['newTag']}"
        else:
            container["image"] = new + reference[len(name) :]


def pod_spec(obj: Object) -> Object | None:
    if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        spec: Object = obj["spec"]["template"]["spec"]
        return spec
    return None


def _containers(objects: list[Object]) -> list[Object]:
    found: list[Object] = []
    for obj in objects:
        spec = pod_spec(obj)
        if spec:
            found += spec.get("initContainers", []) + spec["containers"]
    return found


def _hash_generated(rendered: Rendered) -> list[Object]:
    """Suffixes each generated ConfigMap's name with a hash of its content, and the references to it."""
    names: dict[str, str] = {}
    for obj in rendered.objects:
        if obj["kind"] == "ConfigMap" and obj["metadata"]["name"] in rendered.generated:
            name = obj["metadata"]["name"]
            names[name] = f"{name}-{content_hash(name, obj['data'])}"
            obj["metadata"]["name"] = names[name]
    for obj in rendered.objects:
        spec = pod_spec(obj)
        if not spec:
            continue
        references = [v.get("configMap") for v in spec.get("volumes", [])]
        references += [
            s.get("configMap") for v in spec.get("volumes", []) for s in v.get("projected", {}).get("sources", [])
        ]
        for container in spec.get("initContainers", []) + spec["containers"]:
            references += [e.get("configMapRef") for e in container.get("envFrom", [])]
            references += [e.get("valueFrom", {}).get("configMapKeyRef") for e in container.get("env", [])]
        for reference in references:
            if reference and reference.get("name") in names:
                reference["name"] = names[reference["name"]]
    return rendered.objects


def content_hash(name: str, data: dict[str, str]) -> str:
    """A suffix like kustomize's: sha256 of the JSON of kind, name and data, 10 hex digits, a few letters swapped."""
    encoded = json.dumps(
        {"data": data, "kind": "ConfigMap", "name": name}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    digest = hashlib.sha256(encoded.encode()).hexdigest()[:10]
    return digest.translate(str.maketrans("013ae", "ghkmt"))


def sync_config() -> None:
    """Copies config/ over deploy/k8s/base/config/ (kustomize reads no file outside its root)."""
    shutil.rmtree(CONFIG_COPY, ignore_errors=True)
    shutil.copytree(REPO / "config", CONFIG_COPY)


def main(argv: list[str]) -> int:
    if argv == ["--sync-config"]:
        sync_config()
        return 0
    if len(argv) != 1:
        sys.stderr.write("usage: python -m deploy.k8s.render <kustomization dir> | --sync-config\n")
        return 2
    sys.stdout.write(yaml.safe_dump_all(render(Path(argv[0])), sort_keys=False, allow_unicode=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
