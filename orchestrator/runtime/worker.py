"""Running a worker process: logging, then Faust's worker loop until a signal stops it."""

from __future__ import annotations

import logging
from typing import NoReturn

from orchestrator.runtime.app import WorkerApp
from orchestrator.runtime.faust_compat import warn_if_unchecked
from orchestrator.runtime.logs import logging_config

__all__ = ["run_worker"]


def run_worker(worker_app: WorkerApp) -> NoReturn:
    from faust.worker import Worker

    settings = worker_app.settings
    worker = Worker(
        worker_app.app,
        loglevel=settings.log_level.lower(),
        quiet=True,
        logging_config=logging_config(settings.log_level, json=settings.log_json),
    )
    logging.getLogger("orchestrator").setLevel(settings.log_level)
    warn_if_unchecked()
    worker.execute_from_commandline()  # leaves only through SystemExit on shutdown
