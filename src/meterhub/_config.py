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
    "DEFAULT_PII_ALLOW",
    "DEFAULT_PII_DENY",
    "GLOBAL_SWITCH",
    "Config",
    "configure",
    "disable",
    "disable_created_metrics",
    "enable",
    "enable_created_metrics",
    "get_config",
    "is_enabled",
    "reset_defaults",
    "update",
]

GLOBAL_SWITCH = "*"
"""The name of the switch that turns all of meterhub's recording off at once."""

COMPAT_MODES: tuple[str | None, ...] = (None, "prometheus_client")
"""The values of ``compat``: ``None`` (meterhub's defaults) or ``"prometheus_client"``."""

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def _parse_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{name}={raw!r}: expected one of true/false/1/0/yes/no/on/off")


def extensions_disabled(env: Mapping[str, str] | None = None) -> bool:
    """``METERHUB_NO_EXTENSIONS``: run the pure-Python timer cores although the C ones are
    built. Not a :class:`Config` field: the cores are chosen once, when meterhub is imported,
    so :func:`configure` could not change it."""
    raw = (os.environ if env is None else env).get("METERHUB_NO_EXTENSIONS")
    return raw is not None and _parse_bool("METERHUB_NO_EXTENSIONS", raw)


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
    "textfile_process_metrics": "METERHUB_TEXTFILE_PROCESS_METRICS",
    "multiproc_dir": "METERHUB_MULTIPROC_DIR",
    "strict": "METERHUB_STRICT",
    "max_series": "METERHUB_MAX_SERIES",
    "disabled_switches": "METERHUB_DISABLED_SWITCHES",
    "created": "METERHUB_CREATED",
    "oplog_max_bytes": "METERHUB_OPLOG_MAX_BYTES",
    "oplog_max_record_bytes": "METERHUB_OPLOG_MAX_RECORD_BYTES",
    "pii_deny": "METERHUB_PII_DENY",
    "pii_allow": "METERHUB_PII_ALLOW",
    "compat": "METERHUB_COMPAT",
    "legacy_names": "METERHUB_LEGACY_NAMES",
}
"""Each :class:`Config` field and the environment variable that sets it."""


DEFAULT_PII_DENY: frozenset[str] = frozenset(
    {
        # one word: refused wherever it appears as a token ("user_email", "Access-Token")
        "email", "password", "passwd", "secret", "token", "cookie", "authorization",
        "username", "phone", "ssn",
        # several words: refused as adjacent tokens or written as one ("api_key", "apiKey",
        # "apikey"); "name", "key", "user", "id" on their own stay allowed
        "api key", "private key", "first name", "last name", "full name", "credit card",
        "ip address", "user id", "session id", "client id", "request id", "user name",
        "e mail",
    }
)  # fmt: skip
"""The PII deny-list (``METERHUB_PII_DENY`` / ``configure(pii_deny=...)``): label names
and operation-metadata keys that name personal data, secrets or unbounded ids.

A name is split into tokens after normalising it (see :func:`meterhub.naming.pii_tokens`):
NFKC, case folding, invisible characters removed, camelCase and every non-alphanumeric
character (``-``, ``_``, ``.``, spaces) separating tokens. It is refused when

* a token is a one-word entry, or its plural (``emails``), or - for ``email``,
  ``password``, ``passwd``, ``secret`` and ``token`` - ends with one (``accesstoken``) or
  starts with one followed by a qualifier (``passwordhash``, ``tokenid``; not
  ``secretary`` or ``tokenizer``);
* two adjacent tokens written together are a one-word entry (``PassWord``);
* adjacent tokens spell a several-word entry (``user id``, ``user.id``, ``userId``), or one
  token is that entry written as one word (``userid``, ``apikey``), plural included.

Ordinary label words (``name``, ``key``, ``type``, ``kind``, ``user``, ``id``) pass on their
own. False positives go on the allow-list (:data:`DEFAULT_PII_ALLOW`).
"""

DEFAULT_PII_ALLOW: frozenset[str] = frozenset({"token_type", "gen_ai_token_type"})
"""Names allowed although the deny-list matches them (``METERHUB_PII_ALLOW`` /
``configure(pii_allow=...)``), compared by tokens: ``token_type`` also allows ``tokenType``
and ``token.type``. The defaults are the LLM token-count labels (``input``/``output``;
OpenTelemetry's ``gen_ai.token.type``), which name a kind of token, not a secret.
"""


def _parse_names(name: str, raw: str, default: frozenset[str]) -> frozenset[str]:
    """A comma list; a leading ``+`` keeps the default entries and adds these."""
    text = raw.strip()
    base: frozenset[str] = frozenset()
    if text.startswith("+"):
        base, text = default, text[1:]
    return base | frozenset(n.strip() for n in text.split(",") if n.strip())


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
    textfile_process_metrics: bool = False
    """Write the default collectors' families (``process_*``, ``python_info``,
    ``python_gc_*``) into textfiles too. Off: node_exporter exports its own ``process_*``
    and would drop the file's as duplicates (see ``meterhub.export.textfile``)."""
    multiproc_dir: str | None = None
    strict: bool = False
    max_series: int = 10_000
    disabled_switches: frozenset[str] = frozenset()
    created: bool = False
    oplog_max_bytes: int = 64 << 20
    """Default ``OperationLog(max_queue_bytes=)``: bytes of records held in memory at most."""
    oplog_max_record_bytes: int = 1 << 20
    """Default ``OperationLog(max_record_bytes=)``: the largest record's JSON."""
    pii_deny: frozenset[str] = DEFAULT_PII_DENY
    pii_allow: frozenset[str] = DEFAULT_PII_ALLOW
    compat: str | None = None
    """``"prometheus_client"``: output byte-identical to prometheus_client's (floats with
    ``.0``, ``_created`` samples on, errors raised). Explicit ``created``/``strict`` win."""
    legacy_names: bool = False
    """Refuse metric and label names outside ``[a-zA-Z_:][a-zA-Z0-9_:]*`` (Prometheus 2's
    grammar) instead of accepting UTF-8 names and escaping them when rendered."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Config:
        """Read ``METERHUB_*`` variables from *env* (default: the environment), then *overrides*."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for field, var in ENV_VARS.items():
            raw = env.get(var)
            if raw is None:
                continue
            if field in (
                "enabled",
                "strict",
                "created",
                "legacy_names",
                "textfile_process_metrics",
            ):
                values[field] = _parse_bool(var, raw)
            elif field == "textfile_interval":
                values[field] = _parse_positive(var, raw, float)
            elif field in ("max_series", "oplog_max_bytes", "oplog_max_record_bytes"):
                values[field] = int(_parse_positive(var, raw, int))
            elif field == "disabled_switches":
                values[field] = frozenset(s.strip() for s in raw.split(",") if s.strip())
            elif field == "pii_deny":
                values[field] = _parse_names(var, raw, DEFAULT_PII_DENY)
            elif field == "pii_allow":
                values[field] = _parse_names(var, raw, DEFAULT_PII_ALLOW)
            else:
                values[field] = raw or None
        unknown = set(overrides) - set(ENV_VARS)
        if unknown:
            raise TypeError(f"unknown meterhub setting(s): {', '.join(sorted(unknown))}")
        for field in ("disabled_switches", "pii_deny", "pii_allow"):
            if field in overrides:
                overrides[field] = _name_set(field, overrides[field])
        values.update(overrides)
        compat = values.get("compat") or None
        if compat not in COMPAT_MODES:
            modes = ", ".join(str(m) for m in COMPAT_MODES[1:])
            raise ValueError(f"METERHUB_COMPAT={compat!r}: expected one of {modes} (or unset)")
        values["compat"] = compat
        if compat is not None:
            # what prometheus_client does, unless set explicitly
            values.setdefault("created", True)
            values.setdefault("strict", True)
        return cls(**values)


def _name_set(field: str, names: Any) -> frozenset[str]:
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise TypeError(f"{field} must be a collection of str, got {names!r}")
    return frozenset(names)


_lock = threading.RLock()


def _renew_lock(late: bool) -> None:
    global _lock
    _lock = threading.RLock()  # a child forked mid-configure() must not inherit it held


after_fork_hook(_renew_lock)
_config: Config | None = None
_switch_state: dict[str, bool] = {}
# Objects (metrics, event rules) that must hear about switch changes: switch -> listeners.
_listeners: dict[str, weakref.WeakSet[Any]] = {}
# Caches derived from the configuration (naming's clean-name cache): emptied on every change.
_config_hooks: list[Callable[[], None]] = []


def on_config_change(hook: Callable[[], None]) -> None:
    """Call *hook* whenever the configuration is replaced or reset (caches built from it)."""
    _config_hooks.append(hook)


def _config_changed() -> None:
    for hook in _config_hooks:
        hook()


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


def update(**settings: Any) -> Config:
    """Change some settings of the current configuration, keeping the rest and the switches.

    Example::

        >>> import meterhub
        >>> from meterhub._config import DEFAULT_PII_DENY, update
        >>> update(pii_deny=DEFAULT_PII_DENY | {"region"}).pii_deny >= {"region"}
        True
        >>> meterhub.reset_defaults()
    """
    unknown = set(settings) - set(ENV_VARS)
    if unknown:
        raise TypeError(f"unknown meterhub setting(s): {', '.join(sorted(unknown))}")
    global _config
    with _lock:
        for field in ("disabled_switches", "pii_deny", "pii_allow"):
            if field in settings:
                settings[field] = _name_set(field, settings[field])
        cfg = dataclasses.replace(get_config(), **settings)
        if "enabled" in settings or "disabled_switches" in settings:
            _apply(cfg)
        else:
            _config = cfg
            _config_changed()
        return cfg


def enable_created_metrics() -> None:
    """Turn ``_created`` samples on (prometheus_client's function; ``created=True``)."""
    update(created=True)


def disable_created_metrics() -> None:
    """Turn ``_created`` samples off (prometheus_client's function; ``created=False``)."""
    update(created=False)


def _apply(cfg: Config) -> None:
    global _config
    _config = cfg
    _config_changed()
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
        _config_changed()
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
