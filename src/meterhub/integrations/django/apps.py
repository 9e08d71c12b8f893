"""The Django app: wires database, model and textfile support from the settings."""

from __future__ import annotations

import logging
from typing import Any

from django.apps import AppConfig

__all__ = ["MeterHubConfig"]

log = logging.getLogger("meterhub")


class MeterHubConfig(AppConfig):  # type: ignore[misc]
    """``INSTALLED_APPS += ["meterhub.integrations.django"]``."""

    name = "meterhub.integrations.django"
    label = "meterhub"
    verbose_name = "meterhub metrics"
    default = True

    def ready(self) -> None:
        from django.core.signals import setting_changed

        from . import conf

        setting_changed.connect(_settings_changed, dispatch_uid="meterhub.settings")
        apply(conf.get_settings())


def apply(settings: Any) -> None:
    """Install or remove the database and model instrumentation for *settings*."""
    from . import db, models

    if settings.enabled and settings.database:
        db.install()
    else:
        db.uninstall()
    if settings.enabled:
        models.connect_signals(settings.models)
    else:
        models.disconnect_signals()
    _start_textfile(settings.textfile_path if settings.enabled else None)


_textfile_hub: Any = None


def _start_textfile(path: str | None) -> None:
    """Run one textfile flusher for *path* (``None`` stops it)."""
    global _textfile_hub
    from meterhub import REGISTRY, Hub

    previous, _textfile_hub = _textfile_hub, None
    if previous is not None:
        try:
            previous.stop()
        except Exception:
            log.exception("meterhub: stopping the textfile flusher failed")
    if path is None:
        return
    try:
        hub = Hub(registry=REGISTRY, textfile_path=path)
        hub.start()
        _textfile_hub = hub
    except Exception:
        log.exception("meterhub: cannot start the textfile flusher for %s", path)


def _settings_changed(setting: str, **kwargs: Any) -> None:
    if setting in ("METERHUB", "METRICS_ENABLED", "METRICS_FILE_PATH"):
        from django.core.exceptions import ImproperlyConfigured

        from . import conf

        conf._metrics = None
        try:
            apply(conf.get_settings())
        except ImproperlyConfigured:
            # Reported where the settings are used (middleware, view); a signal
            # receiver raising would break override_settings() itself.
            log.warning("meterhub: invalid METERHUB settings", exc_info=True)
