"""gunicorn settings for `make run` and production: uvicorn workers (boochat.workers), the provider
file synced by a child process at start-up and on HUP, each worker's collector tuned and its model
lists read as it starts."""

from __future__ import annotations

import gc
import logging
import os
import subprocess
import sys
import threading

from boochat.env import env_int, env_str

bind = env_str("BOOCHAT_BIND", "127.0.0.1:8000")
workers = env_int("BOOCHAT_WORKERS", 1, minimum=1)
worker_class = "boochat.workers.UvicornWorker"
# Streams last minutes; the worker timeout is a heartbeat, not a request limit, under uvicorn.
timeout = 120
graceful_timeout = env_int("BOOCHAT_GRACEFUL_TIMEOUT", 30, minimum=0)
keepalive = 5
accesslog = "-"
# gunicorn's control socket is one path per user by default, shared by every instance on the machine.
control_socket = env_str("BOOCHAT_CONTROL_SOCKET")
control_socket_disable = not control_socket

logger = logging.getLogger("gunicorn.error")


def _sync_providers(*, at_start: bool) -> None:
    """`manage.py sync_providers` and `sync_tool_servers` in child processes. The master itself never opens
    a database connection: whatever it opened (a pooled PostgreSQL socket) every forked worker would share."""
    commands = [("sync_providers", "Provider")]
    path = env_str("LLAMA_PROVIDERS_PATH")
    if path and os.path.exists(path):  # tool servers come only from the file: without one, no second child
        commands.append(("sync_tool_servers", "Tool server"))
    for command, what in commands:
        result = subprocess.run([sys.executable, "-m", "django", command], capture_output=True, text=True,
                                env={"DJANGO_SETTINGS_MODULE": "boochat.settings", **os.environ})
        for line in result.stdout.splitlines():
            logger.info("%s", line)
        if result.returncode == 0:
            continue
        reason = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit code {result.returncode}"
        if at_start:
            raise RuntimeError(f"Could not sync the {what.lower()}s: {reason}")
        logger.error("%s sync failed, the %ss stay as they were: %s", what, what.lower(), reason)


def on_starting(server) -> None:  # noqa: ANN001 - gunicorn's hook signature
    """Read LLAMA_PROVIDERS_PATH (or the legacy env vars) once, before any worker starts."""
    _sync_providers(at_start=True)


def on_reload(server) -> None:  # noqa: ANN001
    """`kill -HUP` re-reads the provider file before the new workers start; a bad file is logged and
    changes nothing, and the server goes on serving."""
    _sync_providers(at_start=False)


def post_worker_init(worker) -> None:  # noqa: ANN001
    """The worker has loaded the app: what it holds now lives as long as the worker, so it is frozen
    out of the cyclic collector's work; a first threshold of 10,000 new objects lets a burst of
    requests allocate without a collection every few hundred objects, and full collections after
    every second middle one keep memory flat (docs/performance.md). Then the worker reads the model
    lists in the background, and sweeps answers left streaming by a process that died."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 1)
    threading.Thread(target=_warm_caches, name="warm-caches", daemon=True).start()
    threading.Thread(target=_sweep_stale_answers, name="stale-answers", daemon=True).start()


def _sweep_stale_answers() -> None:
    """At start and every so often, answers that a dead process left "streaming" are marked
    interrupted, whether or not anyone opens their page: at once those its lock file lists
    (boochat.orphans), the others once quiet for longer than their provider's read timeout."""
    import time

    from django.conf import settings
    from django.db import connections

    from boochat.autosave import interrupt_all_stale_answers
    from boochat.orphans import interrupt_orphaned_answers

    while True:
        try:
            interrupt_orphaned_answers()
            interrupt_all_stale_answers()
        except Exception:
            logging.getLogger("boochat").warning("Could not sweep stale answers", exc_info=True)
        finally:
            connections.close_all()  # this thread's
        time.sleep(min(60, max(1, settings.BOOCHAT_STALE_STREAM_GRACE)))


def _warm_caches() -> None:
    """Read the hosts' model lists (and the context sizes of the models they have loaded) into this
    worker's cache now, so that the first chat sends after a start do not wait on a host for them."""
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
