"""Benchmark: the picker page with 10 providers x 50 models from a warm catalog cache.

Target (issue 3): p50 under 50 ms. Run with `make bench` (or `.venv/bin/python bench/picker_render.py`).
Starts 10 fake llama-swap hosts on 127.0.0.1, warms the cache once, then times GET /models/ through
Django's test client (the full middleware stack, template rendering, favorites query).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

os.environ.setdefault("BOOCHAT_CATALOG_TTL", "3600")
from harness import percentile, record, setup_django  # noqa: E402

setup_django()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from providers.catalog import load_catalog  # noqa: E402
from providers.models import Provider  # noqa: E402
from settings_app.models import Favorite  # noqa: E402
from settings_app.picker import render_rows  # noqa: E402
from tests.fakes.llama_swap import FakeLlamaSwap, FakeModel  # noqa: E402

PROVIDERS, MODELS, REQUESTS = 10, 50, 200


def main() -> None:
    settings.STATIC_ROOT = tempfile.mkdtemp(prefix="boochat-static-")
    call_command("collectstatic", interactive=False, verbosity=0)  # as `make serve` does
    hosts = [
        FakeLlamaSwap([FakeModel(f"model-{p}-{m}", n_ctx=8192, context_length=8192, loaded=m == 0) for m in range(MODELS)]).start()
        for p in range(PROVIDERS)
    ]
    try:
        for index, host in enumerate(hosts):
            Provider.objects.create(slug=f"host-{index}", name=f"Host {index}", base_url=host.url, is_default=index == 0)
        user = get_user_model().objects.create_user("bench")
        for m in range(10):
            Favorite.objects.toggle(user=user, model_id=f"host-{m}/model-{m}-{m}")
        started = time.perf_counter()
        catalog = load_catalog()
        cold_ms = (time.perf_counter() - started) * 1000
        assert len(catalog.models) == PROVIDERS * MODELS, len(catalog.models)

        client = Client()
        client.force_login(user)
        for _ in range(10):  # warm-up: template and URL caches
            assert client.get("/models/").status_code == 200
        timings = []
        for _ in range(REQUESTS):
            started = time.perf_counter()
            response = client.get("/models/")
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
        size_kb = len(response.content) / 1024
        uncached = []  # every row rendered again: a catalog change or a first visit
        for _ in range(REQUESTS // 4):
            render_rows.cache_clear()
            started = time.perf_counter()
            assert client.get("/models/").status_code == 200
            uncached.append((time.perf_counter() - started) * 1000)
    finally:
        for host in hosts:
            host.stop()

    p50 = statistics.median(timings)
    print(f"picker page, {PROVIDERS} providers x {MODELS} models, warm cache, {REQUESTS} requests ({size_kb:.0f} KiB each)")
    print(f"  cold catalog fetch (10 hosts, concurrent): {cold_ms:8.1f} ms")
    print(f"  p50 {p50:8.1f} ms   p95 {percentile(timings, 95):8.1f} ms   p99 {percentile(timings, 99):8.1f} ms   max {max(timings):8.1f} ms")
    print(f"  rows re-rendered (catalog changed): p50 {statistics.median(uncached):8.1f} ms   p95 {percentile(uncached, 95):8.1f} ms")
    print(f"  target p50 < 50 ms: {'met' if p50 < 50 else 'NOT met'}")
    record("picker", "page p50, 10x50 models, warm cache", boochat=p50, target="< 50 ms", met=p50 < 50)
    record("picker", "page p50, every row re-rendered", boochat=statistics.median(uncached))


if __name__ == "__main__":
    main()
