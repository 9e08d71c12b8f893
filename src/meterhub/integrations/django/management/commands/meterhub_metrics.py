"""``manage.py meterhub_metrics``: print the current metrics.

In multi-process mode (``METERHUB_MULTIPROC_DIR`` set) this shows the merged values of
every worker; otherwise only what this ``manage.py`` process recorded, which is not what
the server's workers counted (a note on stderr says so, and names any ``--name`` that
matched no sample).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from meterhub import REGISTRY, generate_latest, get_config


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
        names: list[str] | None = options.get("name")
        registry: Any = REGISTRY if not names else REGISTRY.restricted_registry(names)
        text = generate_latest(registry).decode("utf-8")
        self.stdout.write(text, ending="")
        multiprocess = bool(get_config().multiproc_dir)
        if not multiprocess:
            self.stderr.write(
                "note: METERHUB_MULTIPROC_DIR is not set, so these are only the values this "
                "manage.py process recorded, not the server's; set it (to the same directory) "
                "in the server and here to see every worker's values merged"
            )
        if names:
            seen = {_name_of(line) for line in text.splitlines()}
            missing = [n for n in names if n not in seen]
            if missing:
                where = "in the multi-process directory" if multiprocess else "in this process"
                self.stderr.write(
                    f"nothing named {', '.join(missing)} {where} (a metric shows up once it "
                    "has a sample; --name takes sample or family names, e.g. "
                    "http_server_requests_total)"
                )


def _name_of(line: str) -> str:
    """The sample name of a sample line, the family name of a ``# TYPE`` line."""
    if line.startswith("# TYPE "):
        return line.split(" ", 3)[2]
    return line.split("{", 1)[0].split(" ", 1)[0]
