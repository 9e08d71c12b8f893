"""Every Python block in docs/*.md runs as pasted, like the README's
(``tests/support/_docblocks.py``: a fresh interpreter, an empty directory, strict mode;
top-level ``await`` runs in an event loop, as in ``python -m asyncio``; files written in
that directory are allowed).

A marker before a block says what else it needs (``tests/support/_docblocks.py``):

* ``<!-- doc-test: with X -->`` runs it with the real thing: ``pushgateway`` and
  ``node_exporter`` (real servers, their address or directory in place of the example's),
  ``tls`` (a certificate and ``METRICS_TOKEN``), ``django-settings`` (read by Django and
  the integration's settings reader), ``NAME.yaml`` (the YAML block the doc shows after it),
  ``myapp`` (an application module, ``myapp.metrics:hub``, the block imports);
* ``<!-- doc-test: needs MODULE -->`` runs it only when that module is installed;
* ``<!-- doc-test: skip REASON -->`` does not run it, and the reason is reported.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from support._docblocks import Block, python_blocks, run_block

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCKS = [
    (path.name, block)
    for path in sorted(DOCS.glob("*.md"))
    for block in python_blocks(path.read_text(encoding="utf-8"))
]


def test_the_docs_have_python_blocks_and_skips_give_a_reason() -> None:
    assert len({name for name, _ in BLOCKS}) >= 5
    assert [(n, b.line) for n, b in BLOCKS if b.skip is not None and len(b.skip) < 10] == []
    running = [b for _, b in BLOCKS if b.skip is None]
    assert len(running) > len(BLOCKS) / 2  # markers are the exception


LOCAL = [(n, b) for n, b in BLOCKS if b.server is None]
ON_PUSHGATEWAY = [(n, b) for n, b in BLOCKS if b.server == "pushgateway"]
ON_NODE_EXPORTER = [(n, b) for n, b in BLOCKS if b.server == "node_exporter"]
DJANGO_SETTINGS = [(n, b) for n, b in BLOCKS if b.server == "django-settings"]
WITH_YAML = [(n, b) for n, b in BLOCKS if b.server is not None and b.server.endswith(".yaml")]
WITH_TLS = [(n, b) for n, b in BLOCKS if b.server == "tls"]
WITH_APP = [(n, b) for n, b in BLOCKS if b.server == "myapp"]
SERVERS = (None, "pushgateway", "node_exporter", "django-settings", "tls", "myapp")


def test_server_markers_name_a_known_server() -> None:
    unknown = [(n, b.line, b.server) for n, b in BLOCKS if b.server not in SERVERS]
    assert unknown == [(n, b.line, b.server) for n, b in WITH_YAML]
    assert ON_PUSHGATEWAY and ON_NODE_EXPORTER  # docs/delivery.md's
    assert DJANGO_SETTINGS  # docs/integrations.md's
    assert WITH_TLS  # docs/delivery.md's
    assert WITH_APP  # docs/ops.md's


@pytest.mark.parametrize(("doc", "block"), LOCAL, ids=[f"{n}:{b.line}" for n, b in LOCAL])
def test_docs_block_runs_as_pasted(doc: str, block: Block, tmp_path: Path) -> None:
    where = f"docs/{doc}:{block.line}"
    if block.skip is not None:
        pytest.skip(f"{where}: {block.skip}")
    for module in block.needs:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{where}: needs {module!r}, which is not installed")
    run_block(where, block, tmp_path, keep_files=True)  # ./metrics of the oplog examples


@pytest.mark.parametrize(
    ("doc", "block"), ON_PUSHGATEWAY, ids=[f"{n}:{b.line}" for n, b in ON_PUSHGATEWAY]
)
def test_docs_block_runs_against_the_real_pushgateway(
    doc: str, block: Block, tmp_path: Path, pushgateway: Any
) -> None:
    address = f"{pushgateway.host}:{pushgateway.port}"
    run_block(f"docs/{doc}:{block.line}", block, tmp_path, replace=("pushgateway:9091", address))
    # the block deleted its group at the end: the gateway holds nothing of job="backup"
    assert 'job="backup"' not in pushgateway.metrics()


@pytest.mark.parametrize(
    ("doc", "block"), ON_NODE_EXPORTER, ids=[f"{n}:{b.line}" for n, b in ON_NODE_EXPORTER]
)
def test_docs_block_feeds_the_real_node_exporter(
    doc: str, block: Block, tmp_path: Path, node_exporter: Any
) -> None:
    where = f"docs/{doc}:{block.line}"
    textfiles = node_exporter.textfile_dir
    run_block(
        where,
        block,
        tmp_path,
        replace=("/var/lib/node_exporter/textfile", str(textfiles)),
        env={"METERHUB_TEXTFILE_PATH": str(textfiles / "hub.prom")},  # as its comment says
    )
    node_exporter.metrics()
    text = node_exporter.metrics()  # answered after the first scrape's errors were logged
    assert "node_textfile_scrape_error 0" in text
    assert text.count('node_textfile_mtime_seconds{file="') == 2  # app.prom and hub.prom
    log = node_exporter.log.read_text()
    assert "was collected before" not in log, f"{where}: node_exporter dropped metrics:\n{log}"


# A settings.py + urls.py fragment, read as Django reads it: the names a project's files
# import (path, include, os) given, the ``...`` left out, every dotted path imported, and
# the METERHUB settings read by the integration's own reader (ImproperlyConfigured if not).
CHECK_SETTINGS = """
import os, sys
import django
from django.conf import settings
settings.configure(INSTALLED_APPS=["meterhub.integrations.django"], ROOT_URLCONF=[])
django.setup()
from django.urls import include, path
from django.utils.module_loading import import_string
from types import SimpleNamespace
from meterhub.integrations.django.conf import get_settings

namespace = {"os": os, "path": path, "include": include}
exec(sys.argv[1], namespace)
apps = [a for a in namespace["INSTALLED_APPS"] if a is not ...]
middleware = [m for m in namespace["MIDDLEWARE"] if m is not ...]
assert apps and middleware and [u for u in namespace["urlpatterns"] if u is not ...]
for app in apps:
    __import__(app)
for dotted in middleware:
    import_string(dotted)
names = ("METERHUB", "METRICS_ENABLED", "METRICS_FILE_PATH")
conf = get_settings(SimpleNamespace(**{n: namespace[n] for n in names if n in namespace}))
assert conf.exclude_paths == tuple(namespace["METERHUB"]["EXCLUDE_PATHS"]), conf
"""


@pytest.mark.parametrize(
    ("doc", "block"), DJANGO_SETTINGS, ids=[f"{n}:{b.line}" for n, b in DJANGO_SETTINGS]
)
def test_docs_django_settings_are_what_the_integration_reads(
    doc: str, block: Block, tmp_path: Path
) -> None:
    pytest.importorskip("django")
    run_block(
        f"docs/{doc}:{block.line}",
        Block(block.line, CHECK_SETTINGS, None),
        tmp_path,
        env={"METRICS_TOKEN": "s3cret"},
        args=(block.code,),
    )


_YAML_FENCE = re.compile(r"^```yaml[ \t]*\n(?P<code>.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


@pytest.mark.parametrize(("doc", "block"), WITH_YAML, ids=[f"{n}:{b.line}" for n, b in WITH_YAML])
def test_docs_block_runs_with_the_yaml_file_the_doc_shows(
    doc: str, block: Block, tmp_path: Path
) -> None:
    # "EventRouter.from_file("events.yaml")" with the events.yaml shown after the block.
    pytest.importorskip("yaml")
    text = (DOCS / doc).read_text(encoding="utf-8")
    after = sum(len(line) + 1 for line in text.splitlines()[: block.line])
    shown = _YAML_FENCE.search(text, after)
    assert shown is not None, f"docs/{doc}:{block.line}: no yaml block after it"
    assert block.server is not None
    (tmp_path / block.server).write_text(shown.group("code"), encoding="utf-8")
    run_block(f"docs/{doc}:{block.line}", block, tmp_path, keep_files=True)


@pytest.mark.parametrize(("doc", "block"), WITH_TLS, ids=[f"{n}:{b.line}" for n, b in WITH_TLS])
def test_docs_block_runs_with_a_certificate_and_a_token(
    doc: str, block: Block, tmp_path: Path
) -> None:
    # The tls.crt/tls.key and METRICS_TOKEN the example expects; any free port for its 9100.
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl CLI not installed: cannot make the example's certificate")
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "tls.key",
         "-out", "tls.crt", "-days", "1", "-subj", "/CN=127.0.0.1"],
        cwd=tmp_path, check=True, capture_output=True,
    )  # fmt: skip
    assert "start_http_server(9100," in block.code
    run_block(
        f"docs/{doc}:{block.line}",
        block,
        tmp_path,
        keep_files=True,
        replace=("start_http_server(9100,", "start_http_server(0,"),
        env={"METRICS_TOKEN": "s3cret"},
    )


# The application module the ops examples import ("myapp.metrics:hub"), as a user's would
# look: a hub with a component and a labeled counter.
MYAPP_METRICS = """
from meterhub import Hub, Registry

hub = Hub(registry=Registry(), namespace="myapp")
hub.inc_counter("orders_total", {"country": "fr"}, help="Orders placed.")
hub.component("jira").call("create_issue")(lambda: None)()
"""


@pytest.mark.parametrize(("doc", "block"), WITH_APP, ids=[f"{n}:{b.line}" for n, b in WITH_APP])
def test_docs_block_runs_with_an_application_module(doc: str, block: Block, tmp_path: Path) -> None:
    package = tmp_path / "myapp"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "metrics.py").write_text(MYAPP_METRICS)
    run_block(f"docs/{doc}:{block.line}", block, tmp_path, keep_files=True)
