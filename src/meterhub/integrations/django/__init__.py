"""Django integration: ``INSTALLED_APPS += ["meterhub.integrations.django"]``.

* :class:`~meterhub.integrations.django.middleware.MeterHubMiddleware` (sync and async)
  records the :mod:`~meterhub.integrations.http_metrics` vocabulary, ``route`` being the
  URL pattern (``/users/<int:pk>/`` recorded as ``/users/{pk}/``);
* database metrics through ``connection.execute_wrapper`` on every connection - no
  ``ENGINE`` swap, so django-tenants, cachalot and connection poolers keep working;
* create/update/delete counts for opted-in models (``MeteredModelMixin`` or the
  ``METERHUB["MODELS"]`` setting);
* a ``/metrics`` view (``path("", include("meterhub.integrations.django.urls"))``),
  protected by bearer or basic auth when configured;
* ``manage.py meterhub_metrics`` prints the current metrics.

Example settings::

    INSTALLED_APPS = [..., "meterhub.integrations.django"]
    MIDDLEWARE = ["meterhub.integrations.django.middleware.MeterHubMiddleware", ...]
    METERHUB = {
        "EXCLUDE_PATHS": ["/metrics", "/health"],
        "MODELS": ["shop.Order"],
        "AUTH": {"BEARER_TOKEN": os.environ["METRICS_TOKEN"]},
    }
"""
