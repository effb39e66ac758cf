"""A chat turn: the question and answer rows saved, then the host asked (compacting first when the
conversation would not fit), the answer left to the relay."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from boochat import database
from boochat.chat.attachments import Upload, save_attachments
from boochat.chat.compaction import learn_from_overflow, prepare_messages
from boochat.chat.prompt import active_messages, answer_reserve, estimate_tokens, upstream_messages
from boochat.models import ChatSession, Message, MessageState
from boochat.proxy import UpstreamError, open_chat_stream
from providers.capabilities import image_support
from providers.context import context_size_for
from providers.http import UpstreamResponse
from providers.routing import Route, RoutingError, resolve

STOPPED_BEFORE_START = "Stopped before the host started to answer."


@dataclass
class NewTurn:
    """A turn whose question and answer rows are saved, before its host is asked."""

    route: Route
    n_ctx: int
    messages: list[dict[str, Any]]  # what the model sees, the question last
    answer: Message


@dataclass
class Turn:
    """A started answer: the open upstream response and the message that will hold it."""

    route: Route
    response: UpstreamResponse
    answer: Message


def begin_turn(session: ChatSession, question: str, uploads: Sequence[Upload] = ()) -> NewTurn:
    """Save the question (with its checked files) and its answer (streaming), and say what the model
    will see. A model that cannot be routed raises RoutingError, with the answer saved as failed."""
    compaction, history = active_messages(session)
    asked = Message(session=session, role=Message.Role.USER, content=question)
    answer = Message(session=session, role=Message.Role.ASSISTANT, state=MessageState.STREAMING,
                     model_id=session.model_id)
    try:
        route = resolve(session.model_id)
    except RoutingError as exc:
        answer.state, answer.error = MessageState.FAILED, str(exc)
        Message.objects.bulk_create([asked, answer])
        raise
    answer.provider, answer.wire_model, answer.model_id = route.provider, route.wire_model, str(route.ref)
    Message.objects.bulk_create([asked, answer])
    if uploads:
        save_attachments(asked, list(uploads))
    if any(a.is_image for m in history for a in m.attachments.all()):
        image_support(str(route.ref))  # what known_to_take_images() reads when the prompt is built
    return NewTurn(route, context_size_for(str(route.ref)).tokens,
                   upstream_messages(route, compaction, [*history, asked], system_prompt=session.system_prompt), answer)


async def start_turn(session: ChatSession, turn: NewTurn) -> Turn:
    """Compact if needed and open the stream; one compaction + retry on over-context. Raises
    UpstreamError after saving the failed answer with why."""
    route, n_ctx, messages, answer = turn.route, turn.n_ctx, turn.messages, turn.answer
    scale = 1.0
    try:
        for attempt in (1, 2):
            if attempt == 2 or estimate_tokens(messages) > n_ctx - answer_reserve(n_ctx):
                messages = await prepare_messages(session, route, n_ctx=n_ctx, scale=scale)
            body = {**session.parameters, "model": route.wire_model, "messages": messages, "stream": True,
                    "stream_options": {"include_usage": True}}
            try:
                response = await open_chat_stream(route, body)
                break
            except UpstreamError as exc:
                if not exc.over_context or attempt == 2:
                    raise
                n_ctx, scale = await learn_from_overflow(route, exc, messages)
    except UpstreamError as exc:
        answer.state, answer.error = MessageState.FAILED, str(exc)
        await database.run(answer.update_fields, "state", "error")
        raise
    except asyncio.CancelledError:  # Stop, or the tab closed, while the host had not answered yet
        answer.state, answer.error = MessageState.INTERRUPTED, STOPPED_BEFORE_START
        await asyncio.shield(database.run(answer.update_fields, "state", "error"))
        raise
    return Turn(route, response, answer)
