"""gunicorn settings for `make run` and production: ASGI workers, provider sync once at start-up,
each worker's collector tuned and its model lists read as it starts."""

from __future__ import annotations

import gc
import logging
import os
import threading

bind = os.environ.get("BOOCHAT_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("BOOCHAT_WORKERS", "1"))
worker_class = "uvicorn_worker.UvicornWorker"
# Streams last minutes; the worker timeout is a heartbeat, not a request limit, under uvicorn.
timeout = 120
graceful_timeout = int(os.environ.get("BOOCHAT_GRACEFUL_TIMEOUT", "30"))
accesslog = "-"


def _sync_providers() -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "boochat.settings")
    django.setup()
    from django.db import connections

    from providers.sync import sync_from_environment

    try:
        sync_from_environment()
    finally:
        # The master forks workers after this: they must not share its database connection.
        connections.close_all()


def on_starting(server) -> None:  # noqa: ANN001 - gunicorn's hook signature
    """Read LLAMA_PROVIDERS_PATH (or the legacy env vars) once, before any worker starts."""
    _sync_providers()


def on_reload(server) -> None:  # noqa: ANN001
    """`kill -HUP` re-reads the provider file before the new workers start."""
    _sync_providers()


def post_worker_init(worker) -> None:  # noqa: ANN001
    """The worker has loaded the app. What it holds now (modules, settings, URL patterns) lives as long
    as the worker: frozen, the cyclic garbage collector no longer walks it at each full collection;
    and a first threshold of 10,000 new objects instead of 700 lets a burst of requests allocate
    without starting a collection every few hundred objects. 500 chat sends at once spent 70-93 ms
    of about 290 in the collector, with one full collection of 47-59 ms; with both, 11-19 ms and
    none, and every send had its first byte after 190-222 ms instead of 273-291 ms (app called
    directly). Full collections, cheap once the app is frozen, come after every second collection
    of the middle generation instead of every tenth: with 10 the worker's memory grew by 7 MB with
    each round of 500 gateway and 500 chat streams (102 to 136 MB in six), with 1 it stays as
    without any of this (103 to 109 MB; 103 to 110 MB untuned). Then the worker reads the model
    lists in the background (_warm_caches)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 1)
    threading.Thread(target=_warm_caches, name="warm-caches", daemon=True).start()


def _warm_caches() -> None:
    """Read the hosts' model lists (and the context sizes of the models they have loaded) into this
    worker's cache now, in the background. Else the first chat sends after a start wait on it: their
    batch looks the context size up, which fetches what is not cached from the host, 64-74 ms in a
    burst of 500 (bench/streams_load.py), up to the host's timeout if it is slow; meanwhile every send
    of the batch waits."""
    from django.db import connections

    from providers.catalog import load_catalog
    from providers.context import context_size_for

    try:
        for model in load_catalog().models:
            if model.loaded:
                context_size_for(model.id)
    except Exception:  # the first request will try again, as it always did
        logging.getLogger("boochat").warning("Could not read the model lists at start-up", exc_info=True)
    finally:
        connections.close_all()  # this thread's
