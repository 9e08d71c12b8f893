"""Settings of the test project (also used by gunicorn in tests/e2e)."""

from __future__ import annotations

import os

SECRET_KEY = "meterhub-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "django_project.urls"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "meterhub.integrations.django",
    "django_project.shop",
]
MIDDLEWARE = ["meterhub.integrations.django.middleware.MeterHubMiddleware"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("METERHUB_TEST_SQLITE", ":memory:"),
    }
}
_pg = os.environ.get("METERHUB_TEST_PG_DSN")
if _pg:
    from urllib.parse import urlsplit

    parts = urlsplit(_pg)
    DATABASES["pg"] = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parts.path.lstrip("/"),
        "USER": parts.username or "",
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
    }
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
METRICS_ENABLED = True
METERHUB = {
    "EXCLUDE_PATHS": ["/metrics", "/health"],
    "MODELS": ["shop.Author"],
}
LOGGING_CONFIG = None
