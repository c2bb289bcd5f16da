"""The delivery side: `workers.DeliveryWorker` is the RQ worker class
(`rq worker -w workers.DeliveryWorker convo-bridge`), loaded on first use."""

from typing import Any

__all__ = ["DeliveryWorker"]


def __getattr__(name: str) -> Any:
    if name == "DeliveryWorker":
        from workers.rq_worker import DeliveryWorker

        return DeliveryWorker
    raise AttributeError(f"module 'workers' has no attribute {name!r}")
