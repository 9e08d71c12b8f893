from __future__ import annotations

from django.urls import include, path, re_path

from . import views

api = [
    path("items/<slug:slug>/", views.item),
    re_path(r"^archive/(?P<year>[0-9]{4})/$", views.archive),
]

urlpatterns = [
    path("users/<int:pk>/", views.user),
    path("async/<int:n>/", views.async_view),
    path("boom/", views.boom),
    path("books/", views.books),
    path("health", views.health),
    path("stream/", views.stream),
    path("astream/", views.astream),
    path("api/<str:version>/", include(api)),
    path("", include("meterhub.integrations.django.urls")),
]
