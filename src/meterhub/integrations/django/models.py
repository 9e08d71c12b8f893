"""Model create/update/delete counts for opted-in models.

Opt a model in with the :class:`MeteredModelMixin` base or by listing it in
``METERHUB["MODELS"]`` (``"app_label.ModelName"``). Counts go to
``django_model_operations_total{model,operation}`` with ``operation`` one of
``created``, ``updated``, ``deleted``. They come from ``post_save`` / ``post_delete``,
so ``bulk_create``, ``QuerySet.update()`` and ``QuerySet.delete()`` of rows without
signal receivers are not counted (Django sends no per-row signal for them).

This module defines no model: the app needs no migration.

Example::

    class Order(MeteredModelMixin, models.Model):
        total = models.DecimalField(max_digits=10, decimal_places=2)
"""

from __future__ import annotations

from typing import Any

from meterhub import REGISTRY, Counter, Registry, shielded

__all__ = ["MeteredModelMixin", "ModelMetrics", "connect_signals", "disconnect_signals"]


class MeteredModelMixin:
    """Base class marking a model whose creates, updates and deletes are counted."""


class ModelMetrics:
    """Signal receivers counting operations of opted-in models."""

    def __init__(self, models: frozenset[str], registry: Registry | None = None) -> None:
        reg = REGISTRY if registry is None else registry
        self._self_metrics = reg.self_metrics
        self.models = models
        self.operations = Counter(
            "django_model_operations_total",
            "Creates, updates and deletes of opted-in Django models.",
            ("model", "operation"),
            registry=reg,
        )

    def wanted(self, sender: Any) -> str | None:
        meta = getattr(sender, "_meta", None)
        if meta is None:
            return None
        label: str = meta.label
        if isinstance(sender, type) and issubclass(sender, MeteredModelMixin):
            return label
        return label if label.lower() in self.models else None

    def saved(self, sender: Any, created: bool = False, **kwargs: Any) -> None:
        with shielded(self._self_metrics, "django_model_operations"):
            label = self.wanted(sender)
            if label is not None:
                self.operations.labels(label, "created" if created else "updated").inc()

    def deleted(self, sender: Any, **kwargs: Any) -> None:
        with shielded(self._self_metrics, "django_model_operations"):
            label = self.wanted(sender)
            if label is not None:
                self.operations.labels(label, "deleted").inc()


def connect_signals(models: frozenset[str], registry: Registry | None = None) -> ModelMetrics:
    """Connect the receivers (idempotent; a later call replaces the opted-in list)."""
    from django.db.models.signals import post_delete, post_save

    receiver = ModelMetrics(models, registry)
    post_save.connect(receiver.saved, dispatch_uid="meterhub.models.save", weak=False)
    post_delete.connect(receiver.deleted, dispatch_uid="meterhub.models.delete", weak=False)
    # connect() ignores a second receiver with the same uid: swap it in explicitly.
    disconnect_signals()
    post_save.connect(receiver.saved, dispatch_uid="meterhub.models.save", weak=False)
    post_delete.connect(receiver.deleted, dispatch_uid="meterhub.models.delete", weak=False)
    return receiver


def disconnect_signals() -> None:
    from django.db.models.signals import post_delete, post_save

    post_save.disconnect(dispatch_uid="meterhub.models.save")
    post_delete.disconnect(dispatch_uid="meterhub.models.delete")
