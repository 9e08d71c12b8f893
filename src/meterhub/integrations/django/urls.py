"""``path("", include("meterhub.integrations.django.urls"))`` serves ``/metrics``."""

from __future__ import annotations

from django.urls import path

from .views import metrics_view

app_name = "meterhub"
urlpatterns = [path("metrics", metrics_view, name="metrics")]
