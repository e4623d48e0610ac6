"""Strategic merge of PodSpecs, as KServe merges well-known presets with the user's ``spec.template``.

Lists of named things merge by their key (containers and init containers by ``name``, env by
``name``, ports by ``containerPort``, volume mounts by ``mountPath``, volumes and image pull secrets
by ``name``); every other list (``args``, ``command``, ``tolerations``) is replaced whole, maps merge
recursively and scalars are replaced, the way Kubernetes' strategic merge patch treats a PodSpec.
"""

from __future__ import annotations

import copy
from typing import Any

# Field name → merge key of the list it holds (from the Kubernetes API's patchMergeKey tags).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "ports": "containerPort",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "volumes": "name",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "resourceClaims": "name",
}


def _merge_list(base: list[Any], override: list[Any], key: str) -> list[Any]:
    merged = [copy.deepcopy(item) for item in base]
    index = {item.get(key): position for position, item in enumerate(merged) if isinstance(item, dict)}
    for item in override:
        if isinstance(item, dict) and item.get(key) in index:
            position = index[item.get(key)]
            merged[position] = merge(merged[position], item)
        else:
            merged.append(copy.deepcopy(item))
    return merged


def merge(base: Any, override: Any) -> Any:
    """``override`` merged onto ``base`` (neither is modified)."""
    if not isinstance(base, dict) or not isinstance(override, dict):
        return copy.deepcopy(override)
    result = copy.deepcopy(base)
    for name, value in override.items():
        if value is None:
            result.pop(name, None)
        elif name in MERGE_KEYS and isinstance(value, list) and isinstance(result.get(name), list):
            result[name] = _merge_list(result[name], value, MERGE_KEYS[name])
        elif isinstance(value, dict) and isinstance(result.get(name), dict):
            result[name] = merge(result[name], value)
        else:
            result[name] = copy.deepcopy(value)
    return result
