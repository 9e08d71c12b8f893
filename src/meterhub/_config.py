"""All of meterhub's process-wide state, in one module.

Configuration is resolved here and nowhere else: keyword arguments given to
:func:`configure` win over environment variables, which win over the defaults.
Other modules read :func:`get_config` (cheap: it returns a cached frozen object)
and never look at ``os.environ`` themselves.

The named switches (``switch="feeds"`` on a metric, ``METERHUB_DISABLED_SWITCHES``)
also live here, because turning one off must reach every metric that uses it.

:func:`reset_defaults` puts everything back for tests.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._forksafe import after_fork_hook

__all__ = [
    "GLOBAL_SWITCH",
    "Config",
    "configure",
    "disable",
    "enable",
    "get_config",
    "is_enabled",
    "reset_defaults",
]

GLOBAL_SWITCH = "*"
"""The name of the switch that turns all of meterhub's recording off at once."""

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def _parse_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{name}={raw!r}: expected one of true/false/1/0/yes/no/on/off")


def _parse_positive(name: str, raw: str, kind: Callable[[str], float]) -> float:
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: expected a positive number") from None
    if not value > 0:
        raise ValueError(f"{name}={raw!r}: expected a positive number")
    return value


ENV_VARS: Mapping[str, str] = {
    "enabled": "METERHUB_ENABLED",
    "textfile_path": "METERHUB_TEXTFILE_PATH",
    "textfile_interval": "METERHUB_TEXTFILE_INTERVAL",
    "multiproc_dir": "METERHUB_MULTIPROC_DIR",
    "strict": "METERHUB_STRICT",
    "max_series": "METERHUB_MAX_SERIES",
    "disabled_switches": "METERHUB_DISABLED_SWITCHES",
    "created": "METERHUB_CREATED",
}
"""Each :class:`Config` field and the environment variable that sets it."""


@dataclasses.dataclass(frozen=True)
class Config:
    """meterhub's settings. Build one with :func:`configure`; read it with :func:`get_config`.

    Example::

        >>> cfg = Config.from_env({"METERHUB_STRICT": "true", "METERHUB_MAX_SERIES": "500"})
        >>> cfg.strict, cfg.max_series
        (True, 500)
    """

    enabled: bool = True
    textfile_path: str | None = None
    textfile_interval: float = 15.0
    multiproc_dir: str | None = None
    strict: bool = False
    max_series: int = 10_000
    disabled_switches: frozenset[str] = frozenset()
    created: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Config:
        """Read ``METERHUB_*`` variables from *env* (default: the environment), then *overrides*."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for field, var in ENV_VARS.items():
            raw = env.get(var)
            if raw is None:
                continue
            if field in ("enabled", "strict", "created"):
                values[field] = _parse_bool(var, raw)
            elif field == "textfile_interval":
                values[field] = _parse_positive(var, raw, float)
            elif field == "max_series":
                values[field] = int(_parse_positive(var, raw, int))
            elif field == "disabled_switches":
                values[field] = frozenset(s.strip() for s in raw.split(",") if s.strip())
            else:
                values[field] = raw or None
        unknown = set(overrides) - set(ENV_VARS)
        if unknown:
            raise TypeError(f"unknown meterhub setting(s): {', '.join(sorted(unknown))}")
        if "disabled_switches" in overrides:
            overrides["disabled_switches"] = frozenset(overrides["disabled_switches"])
        values.update(overrides)
        return cls(**values)


_lock = threading.RLock()


def _renew_lock(late: bool) -> None:
    global _lock
    _lock = threading.RLock()  # a child forked mid-configure() must not inherit it held


after_fork_hook(_renew_lock)
_config: Config | None = None
_switch_state: dict[str, bool] = {}
# Objects (metrics, event rules) that must hear about switch changes: switch -> listeners.
_listeners: dict[str, weakref.WeakSet[Any]] = {}


def get_config() -> Config:
    """The current configuration (resolved from the environment on first use)."""
    cfg = _config
    if cfg is None:
        with _lock:
            if _config is None:
                _apply(Config.from_env())
            cfg = _config
    assert cfg is not None
    return cfg


def configure(env: Mapping[str, str] | None = None, **settings: Any) -> Config:
    """Set meterhub's configuration for this process and return it.

    Keyword arguments override ``METERHUB_*`` environment variables.

    Example::

        >>> import meterhub
        >>> meterhub.configure(strict=True).strict
        True
    """
    with _lock:
        cfg = Config.from_env(env, **settings)
        _apply(cfg)
        return cfg


def _apply(cfg: Config) -> None:
    global _config
    _config = cfg
    _switch_state.clear()
    _switch_state[GLOBAL_SWITCH] = cfg.enabled
    for name in cfg.disabled_switches:
        _switch_state[name] = False
    _notify_all()


def reset_defaults() -> None:
    """Forget configuration and switch changes (tests call this between cases)."""
    global _config
    with _lock:
        _config = None
        _switch_state.clear()
        _notify_all()


def is_enabled(switch: str | None = None) -> bool:
    """Whether recording is on for *switch* (``None``: only the global switch counts)."""
    get_config()
    if not _switch_state.get(GLOBAL_SWITCH, True):
        return False
    return switch is None or _switch_state.get(switch, True)


def enable(switch: str = GLOBAL_SWITCH) -> None:
    """Turn a named switch (default: the global one) on.

    Example::

        >>> import meterhub
        >>> meterhub.disable("feeds"); meterhub.is_enabled("feeds")
        False
        >>> meterhub.enable("feeds"); meterhub.is_enabled("feeds")
        True
    """
    _set_switch(switch, True)


def disable(switch: str = GLOBAL_SWITCH) -> None:
    """Turn a named switch (default: the global one) off; metrics under it record nothing."""
    _set_switch(switch, False)


def _set_switch(switch: str, on: bool) -> None:
    if not isinstance(switch, str) or not switch:
        raise ValueError(f"switch name must be a non-empty string, got {switch!r}")
    get_config()
    with _lock:
        _switch_state[switch] = on
        if switch == GLOBAL_SWITCH:
            _notify_all()
        else:
            _notify(_listeners.get(switch, ()))


def watch_switch(switch: str | None, listener: Any) -> None:
    """Register *listener* (an object with ``_switch_changed(enabled: bool)``) for *switch*.

    Every listener also hears the global switch. Listeners are held weakly.
    """
    with _lock:
        _listeners.setdefault(switch or GLOBAL_SWITCH, weakref.WeakSet()).add(listener)


def _notify_all() -> None:
    for listeners in list(_listeners.values()):
        _notify(listeners)


def _notify(listeners: Iterable[Any]) -> None:
    for listener in list(listeners):
        listener._switch_changed()
