"""Label and field selectors with the real API server's syntax, matching rules and error messages."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rhaii_nb.twin.errors import ApiError

_KEY_RE = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Requirement:
    """One label requirement: ``key op values``; op in =, !=, in, notin, exists, !, gt, lt."""

    key: str
    op: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a label set satisfies this requirement."""
        present = self.key in labels
        value = labels.get(self.key)
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("gt", "lt"):
            try:
                number = int(value) if present else None
            except ValueError:
                return False
            if number is None:
                return False
            bound = int(self.values[0])
            return number > bound if self.op == "gt" else number < bound
        raise AssertionError(self.op)


class LabelSelector:
    """A parsed label selector (string form, as in ``?labelSelector=``)."""

    def __init__(self, requirements: list[Requirement]):
        self.requirements = requirements

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Whether the labels match every requirement (an empty selector matches everything)."""
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def empty(self) -> bool:
        """Whether the selector has no requirement."""
        return not self.requirements

    def __str__(self) -> str:
        parts = []
        for r in self.requirements:
            if r.op in ("=", "!="):
                parts.append(f"{r.key}{r.op}{r.values[0]}")
            elif r.op == "exists":
                parts.append(r.key)
            elif r.op == "!":
                parts.append(f"!{r.key}")
            elif r.op in ("gt", "lt"):
                parts.append(f"{r.key}{'>' if r.op == 'gt' else '<'}{r.values[0]}")
            else:
                parts.append(f"{r.key} {r.op} ({','.join(r.values)})")
        return ",".join(parts)


def _bad(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


_SET_RE = re.compile(r"^\s*(\S+)\s+(in|notin)\s*\((.*)\)\s*$")
_CMP_RE = re.compile(r"^\s*([^!=<>\s]+)\s*(==|!=|=|>|<)\s*(.*?)\s*$")


def _check_key(key: str) -> None:
    if not _KEY_RE.match(key) or len(key.split("/")[-1]) > 63:
        raise _bad(
            f'unable to parse requirement: values[0][{key}]: Invalid value: "{key}": '
            "name part must consist of alphanumeric characters, '-', '_' or '.', "
            "and must start and end with an alphanumeric character"
        )


def _check_value(key: str, value: str) -> None:
    if len(value) > 63 or not _VALUE_RE.match(value):
        raise _bad(
            f'unable to parse requirement: values[0][{key}]: Invalid value: "{value}": '
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
            "and must start and end with an alphanumeric character"
        )


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse ``app=x,tier!=db,env in (a,b),!legacy``; 400 BadRequest on bad syntax."""
    requirements: list[Requirement] = []
    if not text or not text.strip():
        return LabelSelector(requirements)
    for raw in _split_top_level(text):
        part = raw.strip()
        if not part:
            raise _bad(f"unable to parse requirement: found '', expected: identifier in selector {text!r}")
        if m := _SET_RE.match(part):
            key, op, values = m.group(1), m.group(2), [v.strip() for v in m.group(3).split(",")]
            _check_key(key)
            for v in values:
                _check_value(key, v)
            requirements.append(Requirement(key, op, tuple(values)))
        elif part.startswith("!"):
            key = part[1:].strip()
            _check_key(key)
            requirements.append(Requirement(key, "!"))
        elif m := _CMP_RE.match(part):
            key, op, value = m.group(1), m.group(2), m.group(3)
            _check_key(key)
            if op in (">", "<"):
                if not re.fullmatch(r"-?\d+", value):
                    raise _bad(
                        "unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer"
                    )
                requirements.append(Requirement(key, "gt" if op == ">" else "lt", (value,)))
            else:
                _check_value(key, value)
                requirements.append(Requirement(key, "!=" if op == "!=" else "=", (value,)))
        elif re.fullmatch(r"[^\s(),!=<>]+", part):
            _check_key(part)
            requirements.append(Requirement(part, "exists"))
        else:
            raise _bad(f"unable to parse requirement: invalid label selector {text!r}")
    return LabelSelector(requirements)


def selector_from_label_selector_object(selector: Mapping[str, Any] | None) -> LabelSelector:
    """Turn a ``metav1.LabelSelector`` (matchLabels / matchExpressions) into a LabelSelector.

    ``None`` matches nothing, an empty selector matches everything (as in Deployments/NetworkPolicies).
    """
    if selector is None:
        return LabelSelector([Requirement("", "in", ())])  # never matches
    reqs = [Requirement(k, "=", (str(v),)) for k, v in (selector.get("matchLabels") or {}).items()]
    op_map = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in selector.get("matchExpressions") or []:
        op = op_map.get(expr.get("operator", ""))
        if op is None:
            raise ApiError(422, "Invalid", f'"{expr.get("operator")}" is not a valid label selector operator')
        reqs.append(Requirement(expr["key"], op, tuple(expr.get("values") or ())))
    return LabelSelector(reqs)


def label_selector_string(selector: Mapping[str, Any] | None) -> str:
    """String form of a ``metav1.LabelSelector`` (as Scale.status.selector shows it)."""
    return str(selector_from_label_selector_object(selector or {}))


@dataclass(frozen=True)
class FieldRequirement:
    """One field requirement: ``field = value`` or ``field != value``."""

    field: str
    value: str
    negate: bool


class FieldSelector:
    """A parsed field selector checked against an object through a field getter."""

    def __init__(self, requirements: list[FieldRequirement]):
        self.requirements = requirements

    def fields(self) -> set[str]:
        """Fields the selector mentions."""
        return {r.field for r in self.requirements}

    def matches(self, obj: Mapping[str, Any], getter: Callable[[Mapping[str, Any], str], str]) -> bool:
        """Whether ``obj`` satisfies every requirement; ``getter`` reads a field as a string."""
        return all((getter(obj, r.field) == r.value) != r.negate for r in self.requirements)


def parse_field_selector(text: str | None) -> FieldSelector:
    """Parse ``metadata.name=x,status.phase!=Running``; 400 BadRequest on bad syntax."""
    reqs: list[FieldRequirement] = []
    if not text or not text.strip():
        return FieldSelector(reqs)
    for raw in text.split(","):
        part = raw.strip()
        m = re.fullmatch(r"([^!=\s]+)\s*(==|!=|=)\s*(.*)", part)
        if not m:
            raise _bad(f"invalid selector: '{text}'; can't understand '{part}'")
        reqs.append(FieldRequirement(m.group(1), m.group(3).strip(), m.group(2) == "!="))
    return FieldSelector(reqs)


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """Read a dotted field as the API server's field-label string (missing → empty string)."""
    current: Any = obj
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return ""
        current = current.get(part)
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    if isinstance(current, list):  # status.podIPs
        return ",".join(str(x.get("ip", x)) if isinstance(x, Mapping) else str(x) for x in current)
    return str(current)
