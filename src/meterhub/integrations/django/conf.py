"""The integration's settings, read from Django settings in one place.

``METERHUB = {...}`` holds everything; ``METRICS_ENABLED`` and ``METRICS_FILE_PATH``
(the names many projects already use) are honoured as aliases of ``ENABLED`` and
``TEXTFILE_PATH``. Keys:

``ENABLED`` (bool, default True), ``EXCLUDE_PATHS`` (default ``["/metrics"]``),
``BUCKETS`` (duration buckets), ``SIZES`` (bool: body size histograms), ``DATABASE``
(bool: query metrics), ``MODELS`` (``"app_label.Model"`` list), ``AUTH``
(``{"BEARER_TOKEN": str, "BASIC_AUTH": "user:password"}``), ``TEXTFILE_PATH``,
``NAMING`` (``"meterhub"``, the default, or ``"otel"``: OpenTelemetry's HTTP names, see
:mod:`meterhub.integrations.http_metrics`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ImproperlyConfigured

__all__ = ["DjangoSettings", "get_settings", "server_metrics"]

_KEYS = frozenset(
    {"ENABLED", "EXCLUDE_PATHS", "BUCKETS", "SIZES", "DATABASE", "MODELS", "AUTH", "TEXTFILE_PATH",
     "NAMING"}
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class DjangoSettings:
    enabled: bool = True
    exclude_paths: tuple[str, ...] = ("/metrics",)
    buckets: tuple[float, ...] | None = None
    sizes: bool = True
    database: bool = True
    models: frozenset[str] = frozenset()
    bearer_token: str | None = None
    basic_auth: tuple[str, str] | None = None
    textfile_path: str | None = None
    naming: str = "meterhub"


def _bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off", ""):
        return False
    raise ImproperlyConfigured(f"METERHUB {key} must be a bool, got {value!r}")


def _auth(raw: Any) -> tuple[str | None, tuple[str, str] | None]:
    if raw is None:
        return None, None
    if not isinstance(raw, Mapping):
        raise ImproperlyConfigured(f"METERHUB AUTH must be a dict, got {raw!r}")
    unknown = set(raw) - {"BEARER_TOKEN", "BASIC_AUTH"}
    if unknown:
        raise ImproperlyConfigured(f"unknown METERHUB AUTH key(s): {sorted(unknown)}")
    token = raw.get("BEARER_TOKEN")
    if token is not None and (not isinstance(token, str) or not token):
        raise ImproperlyConfigured("METERHUB AUTH BEARER_TOKEN must be a non-empty str")
    basic = raw.get("BASIC_AUTH")
    pair: tuple[str, str] | None = None
    if basic is not None:
        if isinstance(basic, str) and ":" in basic:
            user, _, password = basic.partition(":")
            pair = (user, password)
        elif (
            isinstance(basic, (tuple, list))
            and len(basic) == 2
            and all(isinstance(p, str) for p in basic)
        ):
            pair = (basic[0], basic[1])
        else:
            raise ImproperlyConfigured(
                "METERHUB AUTH BASIC_AUTH must be 'user:password' or (user, password)"
            )
        if not pair[0] or not pair[1] or ":" in pair[0]:
            raise ImproperlyConfigured(
                "METERHUB AUTH BASIC_AUTH needs a user (without ':') and a password"
            )
    return token, pair


def get_settings(settings: Any = None) -> DjangoSettings:
    """Read and validate the settings (raises ``ImproperlyConfigured`` naming the key).

    *settings* defaults to ``django.conf.settings``; any object with the same attributes
    will do.
    """
    if settings is None:
        from django.conf import settings as django_settings

        settings = django_settings

    raw = getattr(settings, "METERHUB", None) or {}
    if not isinstance(raw, Mapping):
        raise ImproperlyConfigured(f"METERHUB must be a dict, got {raw!r}")
    unknown = set(raw) - _KEYS
    if unknown:
        raise ImproperlyConfigured(f"unknown METERHUB setting(s): {sorted(unknown)}")
    enabled = raw.get("ENABLED", getattr(settings, "METRICS_ENABLED", True))
    textfile = raw.get("TEXTFILE_PATH", getattr(settings, "METRICS_FILE_PATH", None))
    if textfile is not None and (not isinstance(textfile, str) or not textfile):
        raise ImproperlyConfigured(f"METERHUB TEXTFILE_PATH must be a path, got {textfile!r}")
    exclude = raw.get("EXCLUDE_PATHS", ("/metrics",))
    if isinstance(exclude, str) or not all(isinstance(p, str) and p for p in exclude):
        raise ImproperlyConfigured("METERHUB EXCLUDE_PATHS must be a list of paths")
    models = raw.get("MODELS", ())
    if isinstance(models, str) or not all(isinstance(m, str) and "." in m for m in models):
        raise ImproperlyConfigured("METERHUB MODELS must list 'app_label.ModelName' strings")
    buckets = raw.get("BUCKETS")
    token, basic = _auth(raw.get("AUTH"))
    naming = raw.get("NAMING", "meterhub")
    if naming not in ("meterhub", "otel"):
        raise ImproperlyConfigured(f"METERHUB NAMING must be 'meterhub' or 'otel', got {naming!r}")
    return DjangoSettings(
        enabled=_bool("ENABLED", enabled),
        exclude_paths=tuple(exclude),
        buckets=None if buckets is None else tuple(buckets),
        sizes=_bool("SIZES", raw.get("SIZES", True)),
        database=_bool("DATABASE", raw.get("DATABASE", True)),
        models=frozenset(m.lower() for m in models),
        bearer_token=token,
        basic_auth=basic,
        textfile_path=textfile,
        naming=naming,
    )


_metrics: Any = None


def server_metrics() -> Any:
    """The process's :class:`HttpServerMetrics` for Django, built from the settings once."""
    global _metrics
    if _metrics is None:
        from meterhub.integrations.http_metrics import HttpServerMetrics

        conf = get_settings()
        _metrics = HttpServerMetrics(
            buckets=conf.buckets,
            exclude_paths=conf.exclude_paths,
            sizes=conf.sizes,
            naming=conf.naming,
        )
    return _metrics
