from __future__ import annotations

from django.db import models

from meterhub.integrations.django.models import MeteredModelMixin


class Book(MeteredModelMixin, models.Model):
    """Opted in through the mixin."""

    title = models.CharField(max_length=100)

    class Meta:
        app_label = "shop"


class Author(models.Model):
    """Opted in through METERHUB["MODELS"]."""

    name = models.CharField(max_length=100)

    class Meta:
        app_label = "shop"


class Untracked(models.Model):
    """Not opted in: its saves are not counted."""

    value = models.IntegerField(default=0)

    class Meta:
        app_label = "shop"


def create_tables(using: str = "default") -> None:
    from django.db import connections

    with connections[using].schema_editor() as editor:
        for model in (Book, Author, Untracked):
            editor.create_model(model)
