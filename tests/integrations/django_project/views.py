from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

from .shop.models import Book


def user(request: HttpRequest, pk: int) -> HttpResponse:
    return HttpResponse(f"user {pk}")


async def async_view(request: HttpRequest, n: int) -> HttpResponse:
    return HttpResponse(f"async {n}")


def boom(request: HttpRequest) -> HttpResponse:
    raise ZeroDivisionError("boom")


def item(request: HttpRequest, version: str, slug: str) -> HttpResponse:
    return HttpResponse(slug)


def archive(request: HttpRequest, version: str, year: str) -> HttpResponse:
    return HttpResponse(year)


def health(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def books(request: HttpRequest) -> Any:
    if request.method == "POST":
        book = Book.objects.create(title="t")
        return JsonResponse({"id": book.pk}, status=201)
    return JsonResponse({"count": Book.objects.count()})


SEEN_DURING_STREAM: list[float] = []


def stream(request: HttpRequest) -> StreamingHttpResponse:
    from meterhub import REGISTRY

    def body() -> Any:
        yield b"a" * 10
        labels = {"method": "GET", "route": "/stream/", "status": "200"}
        SEEN_DURING_STREAM.append(
            REGISTRY.get_sample_value("http_server_requests_total", labels) or 0.0
        )
        yield b"b" * 5

    return StreamingHttpResponse(body())


async def astream(request: HttpRequest) -> StreamingHttpResponse:
    async def body() -> Any:
        yield b"x" * 7
        yield b"y" * 3

    return StreamingHttpResponse(body())
