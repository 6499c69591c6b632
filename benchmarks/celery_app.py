"""The Celery side of benchmarks/bench_orchestrator.py: one trivial task, Redis broker and result backend.

    OSSA_BENCH_CELERY_URL=redis://127.0.0.1:6379/0 celery -A benchmarks.celery_app worker -c 2 -P prefork

The broker URL comes from OSSA_BENCH_CELERY_URL (the benchmark starts an embedded Valkey and sets it);
the benchmark and the worker import this module with the same variable set.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

BROKER_URL = os.environ.get("OSSA_BENCH_CELERY_URL", "redis://127.0.0.1:6379/0")

app = Celery("ossa_bench", broker=BROKER_URL, backend=BROKER_URL)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    # Results stay in Redis for the length of a run only. Otherwise Celery's defaults (early ack,
    # prefetch 4 per process): its fastest stock setting, the one peers are usually measured with.
    result_expires=600,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.echo")  # type: ignore[untyped-decorator]
def echo(payload: Any) -> Any:
    """The trivial task both systems run: return the input unchanged."""
    return payload
