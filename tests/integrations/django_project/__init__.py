"""A small Django project for the integration tests and the gunicorn end-to-end test.

Environment: ``METERHUB_TEST_SQLITE`` (database file, default in-memory),
``METERHUB_TEST_PG_DSN`` (adds a ``pg`` database alias when set).
"""
