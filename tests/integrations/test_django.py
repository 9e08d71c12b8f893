"""The Django integration in a real Django project (tests/integrations/django_project):
middleware (sync and async), database metrics on SQLite and a real PostgreSQL server,
model operations, the /metrics view with auth, the management command, settings."""

from __future__ import annotations

import base64
import io
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("django")

from meterhub import REGISTRY
from meterhub.integrations.http_metrics import UNMATCHED_ROUTE

APP = "meterhub.integrations.django"


@pytest.fixture(scope="module", autouse=True)
def django_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    import django
    from django.conf import settings

    if settings.configured:
        if APP not in settings.INSTALLED_APPS:
            pytest.skip("Django was already configured by another test module in this process")
    else:
        db = tmp_path_factory.mktemp("django") / "db.sqlite3"
        os.environ["METERHUB_TEST_SQLITE"] = str(db)
        os.environ["DJANGO_SETTINGS_MODULE"] = "django_project.settings"
        django.setup()
        from django_project.shop.models import create_tables

        create_tables()
    yield


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def requests(method: str, route: str, status: int) -> float:
    return value("http_server_requests_total", method=method, route=route, status=str(status))


def client() -> Any:
    from django.test import Client

    return Client(raise_request_exception=False)


# -- middleware -------------------------------------------------------------------------


def test_route_templates_from_url_patterns() -> None:
    before = requests("GET", "/users/{pk}/", 200)
    nested = requests("GET", "/api/{version}/items/{slug}/", 200)
    c = client()
    assert c.get("/users/1/").content == b"user 1"
    assert c.get("/users/2/").status_code == 200
    assert c.get("/api/v1/items/some-slug/").content == b"some-slug"
    assert requests("GET", "/users/{pk}/", 200) == before + 2
    assert requests("GET", "/api/{version}/items/{slug}/", 200) == nested + 1


def test_regex_routes_keep_the_pattern_not_the_path() -> None:
    assert client().get("/api/v2/archive/2024/").content == b"2024"
    routes = {
        s.labels["route"]
        for f in REGISTRY.collect(["http_server_requests_total"])
        for s in f.samples
        if s.name == "http_server_requests_total"
    }
    archive = [r for r in routes if "archive" in r]
    assert archive and all("2024" not in r and "v2" not in r for r in archive)


def test_unmatched_paths_share_one_route() -> None:
    before = requests("GET", UNMATCHED_ROUTE, 404)
    c = client()
    for path in ("/nope/", "/users/abc/", "/x/\u00e9/%0A"):
        assert c.get(path).status_code == 404
    assert requests("GET", UNMATCHED_ROUTE, 404) == before + 3


def test_view_exception_is_500_with_its_type() -> None:
    before = requests("GET", "/boom/", 500)
    exc_before = value(
        "http_server_exceptions_total", method="GET", route="/boom/", exception="ZeroDivisionError"
    )
    assert client().get("/boom/").status_code == 500
    assert requests("GET", "/boom/", 500) == before + 1
    assert (
        value(
            "http_server_exceptions_total",
            method="GET",
            route="/boom/",
            exception="ZeroDivisionError",
        )
        == exc_before + 1
    )


def test_other_methods_become_other() -> None:
    before = requests("OTHER", "/users/{pk}/", 200)
    client().generic("BREW", "/users/3/")
    assert requests("OTHER", "/users/{pk}/", 200) == before + 1


async def test_async_stack_records_the_same_vocabulary() -> None:
    from django.test import AsyncClient

    c = AsyncClient(raise_request_exception=False)
    before = requests("GET", "/async/{n}/", 200)
    sync_before = requests("GET", "/users/{pk}/", 200)
    boom_before = requests("GET", "/boom/", 500)
    assert (await c.get("/async/5/")).content == b"async 5"
    assert (await c.get("/users/9/")).status_code == 200
    assert (await c.get("/boom/")).status_code == 500
    assert requests("GET", "/async/{n}/", 200) == before + 1
    assert requests("GET", "/users/{pk}/", 200) == sync_before + 1
    assert requests("GET", "/boom/", 500) == boom_before + 1
    assert value("http_server_requests_in_progress", method="GET") == 0


def test_latency_by_outcome() -> None:
    before = value("http_server_request_duration_seconds_count",
                   method="GET", route="/boom/", status="500")  # fmt: skip
    assert client().get("/boom/").status_code == 500
    after = value("http_server_request_duration_seconds_count",
                  method="GET", route="/boom/", status="500")  # fmt: skip
    assert after == before + 1


def test_otel_naming_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.test import override_settings

    from meterhub import Registry
    from meterhub.integrations import http_metrics
    from meterhub.integrations.django import conf

    # REGISTRY carries the default naming already; one naming per registry.
    otel = Registry(self_metrics=False)
    monkeypatch.setattr(http_metrics, "REGISTRY", otel)
    monkeypatch.setattr(conf, "_metrics", None)
    with override_settings(METERHUB={"NAMING": "otel"}):
        assert client().get("/users/3/").status_code == 200  # a new client: new middleware
        assert client().get("/boom/").status_code == 500
    get = otel.get_sample_value
    for route, status in (("/users/{pk}/", "200"), ("/boom/", "500")):
        labels = {"http.request.method": "GET", "http.route": route,
                  "http.response.status_code": status}  # fmt: skip
        assert get("http.server.request.duration_seconds_count", labels) == 1, route
    error = {
        "http.request.method": "GET",
        "http.route": "/boom/",
        "error.type": "ZeroDivisionError",
    }
    assert get("http.server.exceptions_total", error) == 1


def test_excluded_paths_are_not_recorded() -> None:
    c = client()
    assert c.get("/health").status_code == 200
    assert c.get("/metrics").status_code == 200
    routes = {
        s.labels.get("route")
        for f in REGISTRY.collect(["http_server_requests_total"])
        for s in f.samples
    }
    assert "/health" not in routes and "/metrics" not in routes


def test_request_and_response_sizes() -> None:
    labels = {"method": "POST", "route": "/users/{pk}/"}
    before = value("http_server_request_size_bytes_sum", **labels)
    client().post("/users/4/", data=b"x" * 321, content_type="application/octet-stream")
    assert value("http_server_request_size_bytes_sum", **labels) == before + 321
    assert value("http_server_response_size_bytes_sum", **labels) >= len(b"user 4")


def test_streaming_response_timed_to_its_last_chunk() -> None:
    from django_project.views import SEEN_DURING_STREAM

    before = requests("GET", "/stream/", 200)
    size = value("http_server_response_size_bytes_sum", method="GET", route="/stream/")
    response = client().get("/stream/")
    assert value("http_server_requests_in_progress", method="GET") == 1  # still streaming
    assert b"".join(response.streaming_content) == b"a" * 10 + b"b" * 5
    assert SEEN_DURING_STREAM[-1] == before  # not recorded before the last chunk
    assert requests("GET", "/stream/", 200) == before + 1
    assert value("http_server_response_size_bytes_sum", method="GET", route="/stream/") == (
        size + 15
    )
    assert value("http_server_requests_in_progress", method="GET") == 0


def test_streaming_response_closed_unread_is_still_recorded() -> None:
    before = requests("GET", "/stream/", 200)
    response = client().get("/stream/")
    response.close()
    assert requests("GET", "/stream/", 200) == before + 1
    assert value("http_server_requests_in_progress", method="GET") == 0


async def test_async_streaming_response() -> None:
    from django.test import AsyncClient

    before = requests("GET", "/astream/", 200)
    response = await AsyncClient().get("/astream/")
    chunks = [c async for c in response.streaming_content]
    assert b"".join(chunks) == b"x" * 7 + b"y" * 3
    assert requests("GET", "/astream/", 200) == before + 1


def test_metrics_disabled_removes_the_middleware() -> None:
    from django.core.exceptions import MiddlewareNotUsed
    from django.test import override_settings

    from meterhub.integrations.django.middleware import MeterHubMiddleware

    with override_settings(METRICS_ENABLED=False, METERHUB={}), pytest.raises(MiddlewareNotUsed):
        MeterHubMiddleware(lambda request: None)


def test_recording_failure_never_breaks_the_request(lenient: None) -> None:
    from meterhub.integrations.django.conf import server_metrics

    metrics = server_metrics()
    saved = metrics.duration, dict(metrics._cache)
    metrics.duration = None
    metrics._cache.clear()
    try:
        assert client().get("/users/77/").content == b"user 77"
    finally:
        metrics.duration, cache = saved
        metrics._cache.update(cache)
    assert REGISTRY.self_metrics.errors("http_server_requests", "internal") >= 1


# -- /metrics view and command ------------------------------------------------------------


def test_metrics_view_serves_text() -> None:
    client().get("/users/1/")
    response = client().get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert b'http_server_requests_total{method="GET",route="/users/{pk}/",status="200"}' in (
        response.content
    )


def test_metrics_view_negotiates_openmetrics() -> None:
    response = client().get("/metrics", HTTP_ACCEPT="application/openmetrics-text")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.rstrip().endswith(b"# EOF")


def _auth(**auth: Any) -> Any:
    from django.test import override_settings

    return override_settings(METERHUB={"EXCLUDE_PATHS": ["/metrics"], "AUTH": auth})


def test_metrics_view_bearer_token() -> None:
    with _auth(BEARER_TOKEN="s3cret"):
        c = client()
        denied = c.get("/metrics")
        assert denied.status_code == 401
        assert "Bearer" in denied["WWW-Authenticate"]
        assert c.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
        assert c.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200
        assert c.get("/metrics", HTTP_AUTHORIZATION="bearer s3cret").status_code == 200
        for hostile in ("Bearer s3cret2", "Bearer \u00e9", "Basic s3cret", "s3cret", "Bearer"):
            assert c.get("/metrics", HTTP_AUTHORIZATION=hostile).status_code == 401


def test_metrics_view_head_keeps_the_length_and_both_challenges() -> None:
    with _auth():
        c = client()
        full, head = c.get("/metrics"), c.head("/metrics")
        assert head.status_code == 200 and head.content == b""
        assert head["Content-Length"] == full["Content-Length"]
    with _auth(BEARER_TOKEN="t", BASIC_AUTH="u:p"):
        denied = client().get("/metrics")
        assert denied.status_code == 401
        assert denied["WWW-Authenticate"] == (
            'Bearer realm="metrics", Basic realm="metrics", charset="UTF-8"'
        )


def test_metrics_view_basic_auth() -> None:
    def basic(raw: bytes) -> str:
        return "Basic " + base64.b64encode(raw).decode()

    with _auth(BASIC_AUTH="prom:pa:ss"):
        c = client()
        assert c.get("/metrics").status_code == 401
        assert c.get("/metrics", HTTP_AUTHORIZATION=basic(b"prom:pa:ss")).status_code == 200
        for bad in (
            basic(b"prom:wrong"),
            basic(b"prom"),
            basic(b"\xff\xfe:x"),
            "Basic !!!not-base64!!!",
            "Bearer prom:pa:ss",
        ):
            assert c.get("/metrics", HTTP_AUTHORIZATION=bad).status_code == 401


def test_management_command_prints_metrics() -> None:
    from django.core.management import call_command

    client().get("/users/1/")
    out = io.StringIO()
    call_command("meterhub_metrics", stdout=out)
    assert "# TYPE http_server_requests_total counter" in out.getvalue()
    only = io.StringIO()
    call_command("meterhub_metrics", "--name", "django_db_queries_total", stdout=only)
    assert "django_db_queries_total" in only.getvalue()
    assert "http_server_requests_total" not in only.getvalue()


def test_management_command_says_on_stderr_why_it_printed_nothing() -> None:
    from django.core.management import call_command

    out, err = io.StringIO(), io.StringIO()
    call_command("meterhub_metrics", "--name", "no_such_total", stdout=out, stderr=err)
    assert out.getvalue() == ""
    assert "nothing named no_such_total in this process" in err.getvalue()
    assert "METERHUB_MULTIPROC_DIR is not set" in err.getvalue()
    client().get("/users/1/")
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "meterhub_metrics", "--name", "http_server_request_duration_seconds", stdout=out,
        stderr=err,
    )  # fmt: skip
    assert "http_server_request_duration_seconds_bucket" in out.getvalue()
    assert "nothing named" not in err.getvalue()


# -- settings -----------------------------------------------------------------------------


def _conf(**attrs: Any) -> Any:
    from meterhub.integrations.django.conf import get_settings

    return get_settings(SimpleNamespace(**attrs))


def test_settings_aliases_and_defaults() -> None:
    conf = _conf(METRICS_ENABLED=False, METRICS_FILE_PATH="/tmp/x.prom")
    assert conf.enabled is False and conf.textfile_path == "/tmp/x.prom"
    conf = _conf(METERHUB={"ENABLED": True, "MODELS": ["shop.Book"]}, METRICS_ENABLED=False)
    assert conf.enabled is True and conf.models == frozenset({"shop.book"})
    assert _conf().exclude_paths == ("/metrics",)
    assert _conf().naming == "meterhub"
    assert _conf(METERHUB={"NAMING": "otel"}).naming == "otel"


@pytest.mark.parametrize(
    "bad",
    [
        {"METERHUB": "yes"},
        {"METERHUB": {"NO_SUCH_KEY": 1}},
        {"METERHUB": {"ENABLED": "maybe"}},
        {"METERHUB": {"EXCLUDE_PATHS": "/metrics"}},
        {"METERHUB": {"MODELS": ["NoDot"]}},
        {"METERHUB": {"AUTH": "token"}},
        {"METERHUB": {"AUTH": {"BEARER_TOKEN": ""}}},
        {"METERHUB": {"AUTH": {"BASIC_AUTH": "nocolon"}}},
        {"METERHUB": {"AUTH": {"BASIC_AUTH": ":pw"}}},
        {"METERHUB": {"AUTH": {"BASIC_AUTH": ("a:b", "pw")}}},
        {"METERHUB": {"AUTH": {"OTHER": 1}}},
        {"METRICS_FILE_PATH": 5},
        {"METERHUB": {"NAMING": "opentelemetry"}},
    ],
)
def test_bad_settings_raise_improperly_configured(bad: dict[str, Any]) -> None:
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured):
        _conf(**bad)


def test_metrics_file_path_runs_a_textfile_flusher(tmp_path: Path) -> None:
    import time

    from django.test import override_settings

    target = tmp_path / "app.prom"
    client().get("/users/1/")
    with override_settings(METRICS_FILE_PATH=str(target)):
        deadline = time.monotonic() + 30
        while not target.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert target.exists()
    # Leaving the override stopped the flusher, which wrote one last time.
    assert "http_server_requests_total" in target.read_text()


# -- database -----------------------------------------------------------------------------


def test_no_engine_swap() -> None:
    from django.db import connections

    from meterhub.integrations.django.db import QueryMetrics

    conn = connections["default"]
    assert conn.settings_dict["ENGINE"] == "django.db.backends.sqlite3"
    assert type(conn).__module__ == "django.db.backends.sqlite3.base"
    assert any(isinstance(w, QueryMetrics) for w in conn.execute_wrappers)


def _db(alias: str, vendor: str, statement: str) -> float:
    return value("django_db_queries_total", alias=alias, vendor=vendor, statement=statement)


def test_sqlite_queries_by_alias_vendor_statement() -> None:
    from django_project.shop.models import Untracked

    selects = _db("default", "sqlite", "select")
    inserts = _db("default", "sqlite", "insert")
    Untracked.objects.create(value=1)
    list(Untracked.objects.all())
    Untracked.objects.filter(value=1).count()
    assert _db("default", "sqlite", "select") == selects + 2
    assert _db("default", "sqlite", "insert") == inserts + 1
    durations = value(
        "django_db_query_duration_seconds_count",
        alias="default",
        vendor="sqlite",
        statement="select",
    )
    assert durations >= selects + 2


def test_query_errors_are_counted_and_reraised() -> None:
    from django.db import DatabaseError, connections

    labels = {"alias": "default", "vendor": "sqlite", "statement": "select"}
    before = value("django_db_errors_total", **labels, exception="OperationalError")
    with pytest.raises(DatabaseError), connections["default"].cursor() as cursor:
        cursor.execute("SELECT * FROM no_such_table")
    assert value("django_db_errors_total", **labels, exception="OperationalError") == before + 1


def test_connections_opened_in_other_threads_are_instrumented() -> None:
    from django.db import connections

    from meterhub.integrations.django.db import QueryMetrics

    seen: list[bool] = []

    def work() -> None:
        conn = connections["default"]
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1")
        seen.append(any(isinstance(w, QueryMetrics) for w in conn.execute_wrappers))
        conn.close()

    before = _db("default", "sqlite", "select")
    t = threading.Thread(target=work)
    t.start()
    t.join(timeout=30)
    assert seen == [True]
    assert _db("default", "sqlite", "select") == before + 1


def test_query_in_a_view_is_counted() -> None:
    before = _db("default", "sqlite", "select")
    assert client().get("/books/").status_code == 200
    assert _db("default", "sqlite", "select") == before + 1


# -- models -------------------------------------------------------------------------------


def _ops(model: str, operation: str) -> float:
    return value("django_model_operations_total", model=model, operation=operation)


def test_model_operations_for_opted_in_models() -> None:
    from django_project.shop.models import Author, Book, Untracked

    counts = {(m, o): _ops(m, o) for m in ("shop.Book", "shop.Author")
              for o in ("created", "updated", "deleted")}  # fmt: skip
    book = Book.objects.create(title="a")
    book.title = "b"
    book.save()
    book.delete()
    author = Author.objects.create(name="x")
    author.delete()
    Untracked.objects.create(value=2)
    assert _ops("shop.Book", "created") == counts["shop.Book", "created"] + 1
    assert _ops("shop.Book", "updated") == counts["shop.Book", "updated"] + 1
    assert _ops("shop.Book", "deleted") == counts["shop.Book", "deleted"] + 1
    assert _ops("shop.Author", "created") == counts["shop.Author", "created"] + 1
    assert _ops("shop.Author", "deleted") == counts["shop.Author", "deleted"] + 1
    assert _ops("shop.Untracked", "created") == 0


# -- PostgreSQL ---------------------------------------------------------------------------


@pytest.fixture
def pg_alias(postgres_db: str) -> Iterator[str]:
    """A ``pg`` database alias on a fresh database of the real PostgreSQL server."""
    from urllib.parse import urlsplit

    from django.conf import settings
    from django.db import connections

    parts = urlsplit(postgres_db)
    conf = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parts.path.lstrip("/"),
        "USER": parts.username or "",
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
    }
    full = connections.configure_settings({"default": settings.DATABASES["default"], "pg": conf})
    connections.settings["pg"] = full["pg"]
    try:
        yield "pg"
    finally:
        connections["pg"].close()
        del connections["pg"]
        del connections.settings["pg"]


def test_postgresql_queries_and_errors(pg_alias: str) -> None:
    from django.db import DatabaseError, connections, transaction
    from django_project.shop.models import Author, Book, create_tables

    create_tables(pg_alias)
    selects = _db(pg_alias, "postgresql", "select")
    inserts = _db(pg_alias, "postgresql", "insert")
    creates = _ops("shop.Book", "created")
    Book.objects.using(pg_alias).create(title="pg")
    Author.objects.using(pg_alias).create(name="pg")
    assert Book.objects.using(pg_alias).count() == 1
    assert _db(pg_alias, "postgresql", "insert") == inserts + 2
    assert _db(pg_alias, "postgresql", "select") == selects + 1
    assert _ops("shop.Book", "created") == creates + 1
    assert connections[pg_alias].vendor == "postgresql"

    errors = {"alias": pg_alias, "vendor": "postgresql", "statement": "select"}
    before = value("django_db_errors_total", **errors, exception="ProgrammingError")
    with (
        pytest.raises(DatabaseError),
        transaction.atomic(using=pg_alias),
        connections[pg_alias].cursor() as cursor,
    ):
        cursor.execute("SELECT * FROM no_such_table")
    assert value("django_db_errors_total", **errors, exception="ProgrammingError") == before + 1


def test_sqlite_file_is_the_test_database() -> None:
    from django.db import connections

    assert Path(connections["default"].settings_dict["NAME"]).name == "db.sqlite3"
