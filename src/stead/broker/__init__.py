"""Ephemeral messages between API and workers: wake-ups, stream events, cancel signals."""

from stead.broker.base import (
    Broker,
    CancelSignal,
    StreamEvent,
    Subscription,
    ThreadEvent,
    ThreadEventFeed,
)
from stead.broker.memory import InProcessBroker

__all__ = [
    "Broker",
    "CancelSignal",
    "InProcessBroker",
    "StreamEvent",
    "Subscription",
    "ThreadEvent",
    "ThreadEventFeed",
]
