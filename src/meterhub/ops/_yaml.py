"""YAML in and out for the ops generators, through PyYAML (the ``meterhub[yaml]`` extra).

Multi-line strings are written as literal blocks (``|``) so generated PromQL stays readable,
and keys keep their insertion order so the files diff cleanly when regenerated.
"""

from __future__ import annotations

from typing import Any

__all__ = ["dump_yaml", "load_yaml"]

_HINT = "PyYAML is needed for YAML output: pip install 'meterhub[yaml]'"


def _yaml() -> Any:
    try:
        import yaml
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(_HINT) from exc
    return yaml


def dump_yaml(data: Any) -> str:
    """*data* (plain dicts, lists, strings, numbers) as block-style YAML text."""
    yaml = _yaml()

    class _Dumper(yaml.SafeDumper):  # type: ignore[name-defined,misc]
        pass

    def _str(dumper: Any, value: str) -> Any:
        # PyYAML writes NEL/LS/PS raw in plain and block scalars, where they read back as
        # line breaks: only double quotes escape them.
        if any(c in value for c in "\x85\u2028\u2029"):
            style: str | None = '"'
        else:
            style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, _str)
    text: str = yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        width=1000,
        allow_unicode=True,
    )
    return text


def load_yaml(text: str) -> Any:
    """Parse YAML *text* safely (no arbitrary object construction); ``ValueError`` if bad."""
    yaml = _yaml()
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"invalid YAML: {exc}") from exc
