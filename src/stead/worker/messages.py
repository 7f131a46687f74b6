"""The legacy `messages` stream mode: chunks accumulated on the server, as older clients expect."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessageChunk, BaseMessage, message_chunk_to_message


class LegacyMessages:
    """Turns LangGraph `messages` pairs into `messages/metadata|partial|complete` events."""

    def __init__(self) -> None:
        self._accumulated: dict[str, Any] = {}

    def events(self, message: BaseMessage, metadata: dict[str, Any]) -> list[tuple[str, Any]]:
        message_id = message.id or ""
        events: list[tuple[str, Any]] = []
        if message_id not in self._accumulated:
            events.append(("messages/metadata", {message_id: {"metadata": metadata}}))
            self._accumulated[message_id] = None
        if isinstance(message, AIMessageChunk):
            previous = self._accumulated[message_id]
            combined = message if previous is None else previous + message
            self._accumulated[message_id] = combined
            events.append(("messages/partial", [message_chunk_to_message(combined)]))
        else:
            events.append(("messages/complete", [message]))
        return events
