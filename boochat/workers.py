"""The uvicorn worker gunicorn runs: BooChat's connection limits, answers saved before a graceful
stop ends, no worker left serving once its master is gone, and keys in query strings kept out of
the access log."""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

from uvicorn_worker import UvicornWorker as BaseUvicornWorker

from boochat.access_log import RedactSecrets

logger = logging.getLogger("gunicorn.error")


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


class UvicornWorker(BaseUvicornWorker):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Past this many open connections and tasks, new requests get 503 instead of piling up.
        self.config.limit_concurrency = _env_int("BOOCHAT_MAX_CONNECTIONS", 2000)
        self.config.h11_max_incomplete_event_size = 64 * 1024
        # uvicorn gives up on open connections 3 s before gunicorn's graceful timeout kills the worker;
        # its lifespan shutdown (boochat.asgi) then stops the answers still streaming and waits for
        # their saves (boochat.inflight), so they are saved as interrupted rather than lost.
        self.config.timeout_graceful_shutdown = max(1, self.cfg.graceful_timeout - 3)
        # Checked every second (below): how soon a worker notices that its master is gone.
        self.config.timeout_notify = 1

    def init_process(self) -> None:
        self.master_pid = os.getppid()  # in the worker, after the fork
        logging.getLogger("uvicorn.access").addFilter(RedactSecrets())
        super().init_process()

    async def callback_notify(self) -> None:
        if os.getppid() != self.master_pid:
            # The master was killed (SIGKILL leaves no time to stop us): a worker serving on alone
            # would hold the port and block the restart.
            logger.warning("Worker %s: its master %s is gone; shutting down", os.getpid(), self.master_pid)
            self.master_pid = os.getppid()
            os.kill(os.getpid(), signal.SIGTERM)
        self.notify()
