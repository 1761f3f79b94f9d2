"""``/docs`` and ``/redoc`` render in headless Chromium with no network beyond loopback.

Chromium (Debian's ``chromium``; ``make install`` installs it when run as root) loads
each page from the real service under uvicorn, with every host name but 127.0.0.1
resolving to nothing, so a CDN asset could not load. The rendered DOM must hold one
Swagger UI operation block (ReDoc: one operation section) per operation of
``/openapi.json``. A control run shows the same browser leaves FastAPI's stock CDN
page empty, so the check would catch a page that needs the network.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from fastapi import FastAPI

from serving import create_app
from serving.config import ServingConfig

if TYPE_CHECKING:
    from _fixtures import running, settings
else:
    from tests.serving._fixtures import running, settings

CHROMIUM = "/usr/bin/chromium"
BROWSER_TIMEOUT_S = 60.0


def render(url: str, profile: Path) -> str:
    """The DOM of ``url`` after scripts ran (10 s of virtual time), loopback only."""
    chromium = shutil.which("chromium") or CHROMIUM
    assert Path(chromium).exists(), "chromium is missing: run `make install` as root"
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def operation_ids(base_url: str) -> list[str]:
    """Every ``operationId`` of the service's OpenAPI document."""
    with urllib.request.urlopen(f"{base_url}/openapi.json", timeout=10) as answer:
        spec = json.load(answer)
    return [op["operationId"] for path in spec["paths"].values() for op in path.values()]


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("docs")
    app = create_app(settings(home), config=ServingConfig(load_before_serving=False))
    with running(app) as url:
        yield url


def test_swagger_ui_renders_every_operation_offline(base_url: str, tmp_path: Path) -> None:
    ids = operation_ids(base_url)
    dom = render(f"{base_url}/docs", tmp_path)
    assert 'src="/static-docs/swagger-ui-bundle.js"' in dom
    assert "cdn." not in dom
    blocks = re.findall(r'class="opblock opblock-(?:get|post|put|patch|delete)', dom)
    assert len(blocks) == len(ids) > 10
    rendered = re.findall(r'id="(operations-[^"]+)"', dom)  # operations-<tag>-<operationId>
    assert all(any(r.endswith(f"-{op}") for r in rendered) for op in ids)


def test_redoc_renders_every_operation_offline(base_url: str, tmp_path: Path) -> None:
    ids = operation_ids(base_url)
    dom = render(f"{base_url}/redoc", tmp_path)
    assert 'src="/static-docs/redoc.standalone.js"' in dom
    sections = set(re.findall(r'data-section-id="operation/([^"]+)"', dom))
    assert sections == set(ids)


def test_a_cdn_page_stays_empty_in_the_same_browser(tmp_path: Path) -> None:
    with running(FastAPI()) as url:  # FastAPI's stock /docs loads Swagger UI from a CDN
        dom = render(f"{url}/docs", tmp_path)
    assert "cdn.jsdelivr.net" in dom
    assert "opblock" not in dom
