"""Framework integrations: optional, each importing its framework lazily.

* :mod:`meterhub.integrations.http_metrics` - the one HTTP-server metric vocabulary that
  every web adapter records into (``http_server_requests_total`` and friends);
* :mod:`meterhub.integrations.django` - app, middleware, database and model metrics;
* :mod:`meterhub.integrations.flask` - ``MeterHub(app)`` / ``init_app``;
* :mod:`meterhub.integrations.asgi` - a pure ASGI middleware for Starlette and FastAPI;
* :mod:`meterhub.integrations.celery`, :mod:`~meterhub.integrations.httpclient`,
  :mod:`~meterhub.integrations.tracing` - tasks, outgoing calls and trace correlation.

Integrations use only meterhub's public API; the core never imports them.
"""
