"""``manage.py meterhub_metrics``: print the current metrics.

In multi-process mode (``METERHUB_MULTIPROC_DIR`` set) this shows the merged values of
every worker; otherwise only what this process recorded.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from meterhub import REGISTRY, generate_latest


class Command(BaseCommand):  # type: ignore[misc]
    help = "Print the current metrics in Prometheus text format."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--name",
            action="append",
            default=None,
            help="Only families with a sample of this name (repeatable).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        names = options.get("name")
        registry: Any = REGISTRY if not names else REGISTRY.restricted_registry(names)
        self.stdout.write(generate_latest(registry).decode("utf-8"), ending="")
