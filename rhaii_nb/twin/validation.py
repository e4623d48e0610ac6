"""Object validation: names and metadata, a few builtin rules, and CRD structural-schema validation.

CRD objects are pruned, defaulted and validated against the version's ``openAPIV3Schema`` by walking
the object alongside the schema (cost follows the object's size, not the schema's), with the
apiserver's messages. ``x-kubernetes-validations`` (CEL rules) are not evaluated.
"""

from __future__ import annotations

import copy
import re
from functools import lru_cache
from typing import Any

from rhaii_nb.twin.errors import FieldError

DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN = DNS1123_LABEL + r"(\." + DNS1123_LABEL + r")*"
DNS1035_LABEL = r"[a-z]([-a-z0-9]*[a-z0-9])?"

_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
    "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    f"'{DNS1123_LABEL}')"
)
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    f"'{DNS1123_SUBDOMAIN}')"
)
_DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
    "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
    f"validation is '{DNS1035_LABEL}')"
)
_NAME_RULES = {
    "label": (63, re.compile(DNS1123_LABEL + "$"), _LABEL_MSG),
    "subdomain": (253, re.compile(DNS1123_SUBDOMAIN + "$"), _SUBDOMAIN_MSG),
    "dns1035": (63, re.compile(DNS1035_LABEL + "$"), _DNS1035_MSG),
}
# Name rule per storage key (default: DNS subdomain; RBAC objects: any path segment).
_NAME_RULE_BY_STORAGE = {
    "/namespaces": "label",
    "/services": "dns1035",
    "rbac.authorization.k8s.io/roles": "segment",
    "rbac.authorization.k8s.io/rolebindings": "segment",
    "rbac.authorization.k8s.io/clusterroles": "segment",
    "rbac.authorization.k8s.io/clusterrolebindings": "segment",
}

_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUALIFIED_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
    "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used "
    "for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)


def name_errors(name: str, rule: str, field: str = "metadata.name") -> list[FieldError]:
    """Errors for a name under ``rule`` (label, subdomain, dns1035 or segment)."""
    if rule == "segment":
        if name in (".", "..") or "/" in name or "%" in name:
            return [FieldError(field, "Invalid value", name, "may not contain '/' or '%' or be '.' or '..'")]
        return []
    max_len, regex, msg = _NAME_RULES[rule]
    errors = []
    if len(name) > max_len:
        errors.append(FieldError(field, "Invalid value", name, f"must be no more than {max_len} characters"))
    if not regex.match(name):
        errors.append(FieldError(field, "Invalid value", name, msg))
    return errors


def name_rule(storage: str) -> str:
    """The name rule of a resource (by its storage key)."""
    return _NAME_RULE_BY_STORAGE.get(storage, "subdomain")


def _qualified_name_errors(key: str, field: str) -> list[FieldError]:
    prefix, _, name = key.rpartition("/")
    errors = []
    if prefix:
        errors += [
            FieldError(field, "Invalid value", key, "prefix part " + e.detail)
            for e in name_errors(prefix, "subdomain", field)
        ]
    if not name:
        errors.append(FieldError(field, "Invalid value", key, "name part must be non-empty"))
    elif len(name) > 63:
        errors.append(FieldError(field, "Invalid value", key, "name part must be no more than 63 characters"))
    elif not _QUALIFIED_NAME.match(name):
        errors.append(FieldError(field, "Invalid value", key, _QUALIFIED_MSG))
    return errors


def metadata_errors(obj: dict[str, Any], storage: str, namespaced: bool) -> list[FieldError]:
    """Name, labels and annotations checks of ``metadata`` (after generateName was resolved)."""
    meta = obj.get("metadata") or {}
    errors: list[FieldError] = []
    name = meta.get("name")
    if not name:
        errors.append(
            FieldError("metadata.name", "Required value", detail="name or generateName is required")
        )
    else:
        errors += name_errors(name, name_rule(storage))
    if namespaced and not meta.get("namespace"):
        errors.append(FieldError("metadata.namespace", "Required value"))
    for key, value in (meta.get("labels") or {}).items():
        errors += _qualified_name_errors(key, "metadata.labels")
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            detail = (
                "must be no more than 63 characters" if isinstance(value, str) and len(value) > 63 else ""
            )
            errors.append(FieldError("metadata.labels", "Invalid value", value, detail or _LABEL_VALUE_MSG))
    for key in meta.get("annotations") or {}:
        errors += _qualified_name_errors(key, "metadata.annotations")
    return errors


def builtin_errors(storage: str, obj: dict[str, Any]) -> list[FieldError]:
    """The few builtin-kind rules the runbook can trip over (required containers, selectors...)."""
    errors: list[FieldError] = []
    spec = obj.get("spec") or {}
    if storage == "/pods":
        errors += _pod_spec_errors(spec, "spec")
    elif storage in ("apps/deployments", "apps/replicasets"):
        selector = spec.get("selector")
        if not selector:
            errors.append(FieldError("spec.selector", "Required value"))
        template = spec.get("template") or {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        if selector:
            from rhaii_nb.twin.selectors import selector_from_label_selector_object

            if not selector_from_label_selector_object(selector).matches(labels):
                errors.append(
                    FieldError(
                        "spec.template.metadata.labels",
                        "Invalid value",
                        labels,
                        "`selector` does not match template `labels`",
                    )
                )
        replicas = spec.get("replicas", 1)
        if isinstance(replicas, int) and replicas < 0:
            errors.append(
                FieldError("spec.replicas", "Invalid value", replicas, "must be greater than or equal to 0")
            )
        errors += _pod_spec_errors(template.get("spec") or {}, "spec.template.spec")
    elif storage == "/services":
        if (
            spec.get("type", "ClusterIP") != "ExternalName"
            and not spec.get("ports")
            and spec.get("clusterIP") != "None"
        ):
            errors.append(FieldError("spec.ports", "Required value"))
        for i, port in enumerate(spec.get("ports") or []):
            if not isinstance(port.get("port"), int):
                errors.append(FieldError(f"spec.ports[{i}].port", "Required value"))
    elif storage in ("/configmaps", "/secrets"):
        key_re = re.compile(r"[-._a-zA-Z0-9]+$")
        for section in ("data", "binaryData", "stringData"):
            for key in obj.get(section) or {}:
                if not key_re.match(key) or len(key) > 253:
                    errors.append(
                        FieldError(
                            f"{section}[{key}]",
                            "Invalid value",
                            key,
                            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
                            "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
                            "'[-._a-zA-Z0-9]+')",
                        )
                    )
    return errors


def _pod_spec_errors(spec: dict[str, Any], path: str) -> list[FieldError]:
    errors: list[FieldError] = []
    containers = spec.get("containers")
    if not containers:
        errors.append(FieldError(f"{path}.containers", "Required value"))
    seen: set[str] = set()
    for section in ("initContainers", "containers"):
        for i, container in enumerate(spec.get(section) or []):
            cpath = f"{path}.{section}[{i}]"
            cname = container.get("name")
            if not cname:
                errors.append(FieldError(f"{cpath}.name", "Required value"))
            else:
                errors += name_errors(cname, "label", f"{cpath}.name")
                if cname in seen:
                    errors.append(FieldError(f"{cpath}.name", "Duplicate value", cname))
                seen.add(cname)
            if not container.get("image"):
                errors.append(FieldError(f"{cpath}.image", "Required value"))
    return errors


# ---------------------------------------------------------------- CRD structural schemas

_JSON_TYPE = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number"}


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return _JSON_TYPE.get(type(value), type(value).__name__)


@lru_cache(maxsize=512)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _has_type(value: Any, wanted: str) -> bool:
    if wanted == "object":
        return isinstance(value, dict)
    if wanted == "array":
        return isinstance(value, list)
    if wanted == "string":
        return isinstance(value, str)
    if wanted == "boolean":
        return isinstance(value, bool)
    if wanted == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if wanted == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return True


class SchemaWalk:
    """One prune/default/validate pass of an object against a structural schema."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []
        self.unknown: list[str] = []

    def run(self, obj: dict[str, Any], schema: dict[str, Any]) -> None:
        """Walk the whole custom object: apiVersion/kind/metadata are the server's, the rest the schema's."""
        props = schema.get("properties") or {}
        for key in list(obj):
            if key in ("apiVersion", "kind", "metadata"):
                continue
            sub = props.get(key)
            if sub is None:
                if not schema.get("x-kubernetes-preserve-unknown-fields"):
                    self.unknown.append(key)
                    del obj[key]
                continue
            if obj[key] is None and not sub.get("nullable"):
                del obj[key]
                continue
            obj[key] = self.value(obj[key], sub, key)
        self._defaults_and_required(obj, schema, "", skip=("apiVersion", "kind", "metadata"))

    def _defaults_and_required(
        self, obj: dict[str, Any], schema: dict[str, Any], path: str, skip: tuple[str, ...] = ()
    ) -> None:
        for key, sub in (schema.get("properties") or {}).items():
            if key not in obj and "default" in sub and key not in skip:
                obj[key] = self.value(copy.deepcopy(sub["default"]), sub, _join(path, key))
        for key in schema.get("required") or ():
            if key not in obj and key not in skip:
                self.errors.append(FieldError(_join(path, key), "Required value"))

    def value(self, value: Any, schema: dict[str, Any], path: str) -> Any:
        """Prune, default and validate ``value`` at ``path``; returns the (pruned) value."""
        if value is None:
            if schema.get("nullable"):
                return None
            self._type_error(value, schema.get("type", "object"), path)
            return None
        if schema.get("x-kubernetes-int-or-string"):
            if not (isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))):
                self._type_error(value, "integer or string", path)
                return value
        else:
            wanted = schema.get("type")
            if wanted and not _has_type(value, wanted):
                self._type_error(value, wanted, path)
                return value
        if isinstance(value, dict):
            self._object(value, schema, path)
        elif isinstance(value, list):
            self._array(value, schema, path)
        else:
            self._scalar(value, schema, path)
        for sub in schema.get("allOf") or ():
            self._check_only(value, sub, path)
        any_of = schema.get("anyOf")
        if (
            any_of
            and not schema.get("x-kubernetes-int-or-string")
            and not any(self._passes(value, sub, path) for sub in any_of)
        ):
            self.errors.append(
                FieldError(path, "Invalid value", value, "must validate at least one schema (anyOf)")
            )
        if schema.get("oneOf"):
            passing = sum(1 for sub in schema["oneOf"] if self._passes(value, sub, path))
            if passing != 1:
                self.errors.append(
                    FieldError(path, "Invalid value", value, "must validate one and only one schema (oneOf)")
                )
        if "not" in schema and self._passes(value, schema["not"], path):
            self.errors.append(FieldError(path, "Invalid value", value, "must not validate the schema (not)"))
        return value

    def _passes(self, value: Any, schema: dict[str, Any], path: str) -> bool:
        probe = SchemaWalk()
        probe._check_only(value, schema, path)
        return not probe.errors

    def _check_only(self, value: Any, schema: dict[str, Any], path: str) -> None:
        """Value validations of allOf/anyOf/oneOf branches (they never prune or default)."""
        probe = SchemaWalk()
        probe.value(copy.deepcopy(value), {**schema, "x-kubernetes-preserve-unknown-fields": True}, path)
        self.errors.extend(probe.errors)

    def _type_error(self, value: Any, wanted: str, path: str) -> None:
        actual = _type_name(value)
        detail = f'{path} in body must be of type {wanted}: "{actual}"'
        self.errors.append(
            FieldError(path, "Invalid value", actual, detail, reason_override="FieldValueTypeInvalid")
        )

    def _object(self, value: dict[str, Any], schema: dict[str, Any], path: str) -> None:
        props = schema.get("properties")
        additional = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields", False)
        embedded = schema.get("x-kubernetes-embedded-resource", False)
        for key in list(value):
            sub = props.get(key) if props else None
            child_path = _join(path, key)
            if sub is None and isinstance(additional, dict):
                sub = additional
            if sub is None:
                if embedded and key in ("apiVersion", "kind", "metadata"):
                    continue
                if not preserve and additional is not True:
                    self.unknown.append(child_path)
                    del value[key]
                continue
            if value[key] is None and not sub.get("nullable"):
                del value[key]
                if "default" not in sub:
                    continue
            if key in value:
                value[key] = self.value(value[key], sub, child_path)
        if props:
            self._defaults_and_required(value, schema, path)
        else:
            for key in schema.get("required") or ():
                if key not in value:
                    self.errors.append(FieldError(_join(path, key), "Required value"))
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            self.errors.append(
                FieldError(path, "Too many", len(value), f"must have at most {schema['maxProperties']} items")
            )
        if "minProperties" in schema and len(value) < schema["minProperties"]:
            self.errors.append(
                FieldError(
                    path,
                    "Invalid value",
                    len(value),
                    f"{path} in body should have at least {schema['minProperties']} properties",
                )
            )

    def _array(self, value: list[Any], schema: dict[str, Any], path: str) -> None:
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                value[i] = self.value(item, items, f"{path}[{i}]")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            self.errors.append(
                FieldError(path, "Too many", len(value), f"must have at most {schema['maxItems']} items")
            )
        if "minItems" in schema and len(value) < schema["minItems"]:
            self.errors.append(
                FieldError(
                    path,
                    "Invalid value",
                    len(value),
                    f"{path} in body should have at least {schema['minItems']} items",
                )
            )
        list_type = schema.get("x-kubernetes-list-type")
        if list_type == "map":
            keys = schema.get("x-kubernetes-list-map-keys") or []
            seen: set[tuple[Any, ...]] = set()
            for i, item in enumerate(value):
                if not isinstance(item, dict):
                    continue
                ident = tuple(repr(item.get(k)) for k in keys)
                if ident in seen:
                    shown = {k: item.get(k) for k in keys}
                    self.errors.append(FieldError(f"{path}[{i}]", "Duplicate value", shown))
                seen.add(ident)
        elif list_type == "set":
            seen_values: list[Any] = []
            for i, item in enumerate(value):
                if item in seen_values:
                    self.errors.append(FieldError(f"{path}[{i}]", "Duplicate value", item))
                seen_values.append(item)

    def _scalar(self, value: Any, schema: dict[str, Any], path: str) -> None:
        if "enum" in schema and value not in schema["enum"]:
            supported = ", ".join(f'"{v}"' if isinstance(v, str) else str(v) for v in schema["enum"])
            self.errors.append(FieldError(path, "Unsupported value", value, f"supported values: {supported}"))
        if isinstance(value, str):
            if "pattern" in schema and not _regex(schema["pattern"]).search(value):
                self.errors.append(
                    FieldError(
                        path, "Invalid value", value, f"{path} in body should match '{schema['pattern']}'"
                    )
                )
            if "maxLength" in schema and len(value) > schema["maxLength"]:
                self.errors.append(
                    FieldError(path, "Too long", value, f"may not be longer than {schema['maxLength']}")
                )
            if "minLength" in schema and len(value) < schema["minLength"]:
                self.errors.append(
                    FieldError(
                        path,
                        "Invalid value",
                        value,
                        f"{path} in body should be at least {schema['minLength']} chars long",
                    )
                )
        elif isinstance(value, int | float) and not isinstance(value, bool):
            self._bounds(value, schema, path)

    def _bounds(self, value: float, schema: dict[str, Any], path: str) -> None:
        if "minimum" in schema:
            low = schema["minimum"]
            if schema.get("exclusiveMinimum") and value <= low:
                self.errors.append(
                    FieldError(path, "Invalid value", value, f"{path} in body should be greater than {low}")
                )
            elif value < low:
                self.errors.append(
                    FieldError(
                        path,
                        "Invalid value",
                        value,
                        f"{path} in body should be greater than or equal to {low}",
                    )
                )
        if "maximum" in schema:
            high = schema["maximum"]
            if schema.get("exclusiveMaximum") and value >= high:
                self.errors.append(
                    FieldError(path, "Invalid value", value, f"{path} in body should be less than {high}")
                )
            elif value > high:
                self.errors.append(
                    FieldError(
                        path, "Invalid value", value, f"{path} in body should be less than or equal to {high}"
                    )
                )
        if "multipleOf" in schema and value % schema["multipleOf"]:
            self.errors.append(
                FieldError(
                    path,
                    "Invalid value",
                    value,
                    f"{path} in body should be a multiple of {schema['multipleOf']}",
                )
            )


def validate_custom_object(
    obj: dict[str, Any], schema: dict[str, Any] | None
) -> tuple[list[FieldError], list[str]]:
    """Prune (in place), default and validate a custom object; returns (errors, pruned unknown paths)."""
    walk = SchemaWalk()
    if schema:
        walk.run(obj, schema)
    return walk.errors, walk.unknown


# ---------------------------------------------------------------- builtin kinds: unknown fields

_BUILTIN_DEFINITIONS = {
    "/pods": "io.k8s.api.core.v1.Pod",
    "/services": "io.k8s.api.core.v1.Service",
    "/secrets": "io.k8s.api.core.v1.Secret",
    "/configmaps": "io.k8s.api.core.v1.ConfigMap",
    "/namespaces": "io.k8s.api.core.v1.Namespace",
    "/nodes": "io.k8s.api.core.v1.Node",
    "/serviceaccounts": "io.k8s.api.core.v1.ServiceAccount",
    "/endpoints": "io.k8s.api.core.v1.Endpoints",
    "events": "io.k8s.api.core.v1.Event",
    "apps/deployments": "io.k8s.api.apps.v1.Deployment",
    "apps/replicasets": "io.k8s.api.apps.v1.ReplicaSet",
    "networking.k8s.io/networkpolicies": "io.k8s.api.networking.v1.NetworkPolicy",
    "rbac.authorization.k8s.io/roles": "io.k8s.api.rbac.v1.Role",
    "rbac.authorization.k8s.io/rolebindings": "io.k8s.api.rbac.v1.RoleBinding",
    "rbac.authorization.k8s.io/clusterroles": "io.k8s.api.rbac.v1.ClusterRole",
    "rbac.authorization.k8s.io/clusterrolebindings": "io.k8s.api.rbac.v1.ClusterRoleBinding",
}


@lru_cache(maxsize=1)
def _kubernetes_definitions() -> dict[str, Any]:
    """The Kubernetes 1.31 object definitions shipped in the package (loaded once, on first use)."""
    import json
    from importlib import resources

    path = resources.files("rhaii_nb") / "data/schemas/kubernetes/v1.31.0-local-strict/_definitions.json"
    return json.loads(path.read_text(encoding="utf-8"))["$defs"]


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = defs.get(schema["$ref"].rsplit("/", 1)[-1], {})
    return schema


def builtin_unknown_fields(storage: str, obj: dict[str, Any]) -> list[str]:
    """Drop (in place) the fields a builtin kind does not have; returns their paths (``spec.replica``).

    The real server's decoder drops them too, and rejects them under ``fieldValidation=Strict``.
    """
    name = _BUILTIN_DEFINITIONS.get(storage)
    if name is None:
        return []
    defs = _kubernetes_definitions()
    unknown: list[str] = []
    _walk_known(obj, defs[name], defs, "", unknown)
    return unknown


def _walk_known(
    value: Any, schema: dict[str, Any], defs: dict[str, Any], path: str, unknown: list[str]
) -> None:
    schema = _resolve(schema, defs)
    if isinstance(value, dict):
        props = schema.get("properties")
        additional = schema.get("additionalProperties")
        if props is not None:
            for key in list(value):
                child = _join(path, key)
                if key in props:
                    _walk_known(value[key], props[key], defs, child, unknown)
                elif isinstance(additional, dict):
                    _walk_known(value[key], additional, defs, child, unknown)
                elif additional is False:
                    unknown.append(child)
                    del value[key]
        elif isinstance(additional, dict):
            for key, item in value.items():
                _walk_known(item, additional, defs, _join(path, key), unknown)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            _walk_known(item, schema["items"], defs, f"{path}[{i}]", unknown)
