"""Validation of JSON documents against the project's published JSON Schemas.

Uses the ``jsonschema`` package when it is installed; otherwise a small validator of the
subset of draft 2020-12 the shipped schemas use (``type``, ``required``, ``properties``,
``additionalProperties``, ``patternProperties``, ``items``, ``minItems``, ``maxItems``,
``enum``, ``const``, ``minimum``, ``exclusiveMinimum``, ``pattern``, ``oneOf``, ``anyOf``,
local ``$ref``). Keywords outside that subset are refused, so a schema edit cannot be
silently ignored by the fallback.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["schema_errors", "validate"]

_SUPPORTED = {"$schema", "$id", "title", "description", "$defs", "type", "required",
              "properties", "additionalProperties", "patternProperties", "items", "minItems",
              "maxItems", "enum", "const", "minimum", "exclusiveMinimum", "pattern", "oneOf",
              "anyOf", "$ref", "$comment"}

_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def schema_errors(instance: Any, schema: dict[str, Any]) -> list[str]:
    """Every violation of ``schema`` by ``instance``, each naming its JSON path (empty: valid)."""
    try:
        import jsonschema  # type: ignore[import-untyped]
    except ImportError:
        out: list[str] = []
        _check(instance, schema, schema, "$", out)
        return out
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'$' + ''.join(f'[{p!r}]' for p in e.absolute_path)}: {e.message}"
            for e in validator.iter_errors(instance)]


def validate(instance: Any, schema: dict[str, Any], what: str = "document") -> None:
    """Raise ``ValueError`` listing (up to 5 of) the violations of ``schema``."""
    errors = schema_errors(instance, schema)
    if errors:
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise ValueError(f"{what} does not match its schema: " + "; ".join(errors[:5]) + more)


def _resolve(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    if not ref.startswith("#/"):
        raise ValueError(f"only local $ref are supported, got {ref!r}")
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part]
    return node  # type: ignore[no-any-return]


def _check(v: Any, s: dict[str, Any], root: dict[str, Any], where: str, out: list[str]) -> None:
    unknown = set(s) - _SUPPORTED
    if unknown:
        raise ValueError(f"schema keywords {sorted(unknown)} at {where} are not supported by "
                         "the fallback validator (install jsonschema)")
    if "$ref" in s:
        _check(v, _resolve(s["$ref"], root), root, where, out)
    if "type" in s:
        types = s["type"] if isinstance(s["type"], list) else [s["type"]]
        if not any(_TYPES[t](v) for t in types):
            out.append(f"{where}: {v!r:.60} is not of type {s['type']}")
            return
    if "const" in s and v != s["const"]:
        out.append(f"{where}: {v!r:.60} is not {s['const']!r}")
    if "enum" in s and v not in s["enum"]:
        out.append(f"{where}: {v!r:.60} is not one of {s['enum']}")
    if _TYPES["number"](v):
        if "minimum" in s and v < s["minimum"]:
            out.append(f"{where}: {v} is below the minimum {s['minimum']}")
        if "exclusiveMinimum" in s and v <= s["exclusiveMinimum"]:
            out.append(f"{where}: {v} is not above {s['exclusiveMinimum']}")
    if isinstance(v, str) and "pattern" in s and not re.search(s["pattern"], v):
        out.append(f"{where}: {v!r:.60} does not match {s['pattern']!r}")
    if isinstance(v, list):
        if "minItems" in s and len(v) < s["minItems"]:
            out.append(f"{where}: fewer than {s['minItems']} items")
        if "maxItems" in s and len(v) > s["maxItems"]:
            out.append(f"{where}: more than {s['maxItems']} items")
        if "items" in s:
            for i, item in enumerate(v):
                _check(item, s["items"], root, f"{where}[{i}]", out)
    if isinstance(v, dict):
        for key in s.get("required", []):
            if key not in v:
                out.append(f"{where}: missing required property {key!r}")
        props = s.get("properties", {})
        patterns = s.get("patternProperties", {})
        for key, item in v.items():
            matched = False
            if key in props:
                matched = True
                _check(item, props[key], root, f"{where}[{key!r}]", out)
            for pat, sub in patterns.items():
                if re.search(pat, key):
                    matched = True
                    _check(item, sub, root, f"{where}[{key!r}]", out)
            extra = s.get("additionalProperties", True)
            if not matched:
                if extra is False:
                    out.append(f"{where}: unexpected property {key!r}")
                elif isinstance(extra, dict):
                    _check(item, extra, root, f"{where}[{key!r}]", out)
    for key, need in (("oneOf", 1), ("anyOf", 0)):
        if key in s:
            n_ok = sum(1 for sub in s[key] if not _sub_errors(v, sub, root, where))
            if (need == 1 and n_ok != 1) or (need == 0 and n_ok == 0):
                out.append(f"{where}: {v!r:.60} matches {n_ok} of the {key} alternatives")


def _sub_errors(v: Any, s: dict[str, Any], root: dict[str, Any], where: str) -> list[str]:
    out: list[str] = []
    _check(v, s, root, where, out)
    return out
