"""`acoustid-stack run api`: uvicorn with several worker processes and a graceful drain.

On SIGTERM (or Ctrl-C) the supervisor writes `website.shutdown_file`, so every worker's
health endpoints answer 503 while requests are still served; after
`website.shutdown_delay` seconds it stops the workers, which finish in-flight requests.
A second signal during the drain stops at once. The file is removed on exit, so the next
start is healthy.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from contextlib import suppress
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from acoustid_stack.api.metrics import MULTIPROC_DIR_ENV
from acoustid_stack.config import Settings
from acoustid_stack.config.loader import CONFIG_ENV
from acoustid_stack.http_limits import BoundedHttpToolsProtocol

APP_FACTORY = "acoustid_stack.api.app:create_app_from_env"

logger = logging.getLogger(__name__)


class DrainingMultiprocess(Multiprocess):
    """uvicorn's process supervisor, with a drain period before the stop."""

    def __init__(self, *args: Any, shutdown_file: Path, shutdown_delay: float, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.shutdown_file = shutdown_file
        self.shutdown_delay = shutdown_delay
        self._draining = False

    def handle_term(self) -> None:
        self._drain()

    def handle_int(self) -> None:
        self._drain()

    def _drain(self) -> None:
        if self._draining or self.shutdown_delay <= 0:
            self.should_exit.set()
            return
        self._draining = True
        self.shutdown_file.touch()
        logger.info("draining: health answers 503 for %.1f s before stopping", self.shutdown_delay)
        timer = threading.Timer(self.shutdown_delay, self.should_exit.set)
        timer.daemon = True
        timer.start()


def serve(
    settings: Settings,
    *,
    config_path: str | None,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
) -> None:
    """Run the api until stopped; workers build the app with `create_app_from_env`."""
    if config_path:
        # worker processes load settings themselves, from the same file
        os.environ[CONFIG_ENV] = config_path
    shutdown_file = Path(settings.website.shutdown_file)
    with tempfile.TemporaryDirectory(prefix="acoustid-api-metrics-") as metrics_dir:
        os.environ[MULTIPROC_DIR_ENV] = metrics_dir
        config = uvicorn.Config(
            APP_FACTORY,
            factory=True,
            host=host or settings.api.host,
            port=port or settings.api.port,
            workers=workers or settings.api.workers,
            http=BoundedHttpToolsProtocol,
            limit_concurrency=settings.api.limit_concurrency,
            timeout_keep_alive=settings.api.timeout_keep_alive,
            loop="uvloop",
            log_config=None,  # our logging setup (DESIGN.md §5) stays in charge
            access_log=False,  # api_requests_total counts requests; a line each is noise
            # forwarded headers count from [api] trusted_proxies only, in the app (proxies.py);
            # uvicorn's own reading would trust 127.0.0.1 (or FORWARDED_ALLOW_IPS) besides
            proxy_headers=False,
            timeout_graceful_shutdown=30,
        )
        socket = config.bind_socket()
        supervisor = DrainingMultiprocess(
            config,
            sockets=[socket],
            shutdown_file=shutdown_file,
            shutdown_delay=settings.website.shutdown_delay,
        )
        logger.info(
            "api listening on http://%s:%d with %d workers",
            config.host,
            config.port,
            config.workers,
        )
        try:
            supervisor.run()
        finally:
            socket.close()
            with suppress(FileNotFoundError):
                shutdown_file.unlink()
