"""A chat answer's relay (boochat.relay), which moves its chat to the top of the list when it ends."""

from __future__ import annotations

from collections.abc import AsyncIterator

from django.utils import timezone

from boochat.chat.turns import Turn
from boochat.models import ChatSession
from boochat.relay import relay_stream
from boochat.sse import StreamAccumulator


def relay(turn: Turn, deadline: float | None = None, *, calls_tools: bool = False, spent: int = 0) -> AsyncIterator[bytes]:
    """The chat answer's stream; the session moves to the top of the list when it ends."""

    def touch_session(acc: StreamAccumulator, state: str, error: str) -> None:
        ChatSession.objects.filter(pk=turn.answer.session_id).update(updated_at=timezone.now())

    return relay_stream(turn.route, turn.response, turn.answer, touch_session, (turn.prefix, turn.prefix_reasoning),
                        deadline, meter=turn.meter, calls_tools=calls_tools, spent=spent)
