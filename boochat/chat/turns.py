"""A chat turn: the question and answer rows saved, then the host asked (compacting first when the
conversation would not fit), the answer left to the relay."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import Any

from django.db import transaction
from django.utils import timezone

from boochat import database
from boochat.chat.attachments import Upload, save_attachments
from boochat.chat.branches import Tree
from boochat.chat.compaction import learn_from_overflow, prepare_messages
from boochat.chat.prompt import active_messages, answer_reserve, estimate_tokens, load_tree, upstream_messages
from boochat.models import Attachment, ChatSession, Message, MessageState
from boochat.relay import served_by
from boochat.usage.recording import STATUS_STOPPED, Meter
from providers.capabilities import image_support, reasoning_for
from providers.context import context_size_for
from providers.http import UpstreamResponse
from providers.models import ProviderKind
from providers.routing import Route, RoutingError, resolve
from providers.upstream import UpstreamError, open_chat_stream

STOPPED_BEFORE_START = "Stopped before the host started to answer."


@dataclass
class NewTurn:
    """A turn whose question and answer rows are saved, before its host is asked."""

    route: Route
    n_ctx: int
    messages: list[dict[str, Any]]  # what the model sees, the question last
    answer: Message
    parameters: dict[str, Any]  # the chat's parameters, as this model takes them
    # A continued answer: what it held already (the host goes on from it, the relay saves after it).
    prefix: str = ""
    prefix_reasoning: str = ""
    meter: Meter | None = None  # its limits' admission and usage record (boochat.usage)


@dataclass
class Turn:
    """A started answer: the open upstream response and the message that will hold it."""

    route: Route
    response: UpstreamResponse
    answer: Message
    prefix: str = ""
    prefix_reasoning: str = ""
    meter: Meter | None = None


class CannotContinue(ValueError):
    """An answer that Continue does not apply to; the message says why."""


def _begin(session: ChatSession, tree: Tree, parent: Message | None, question: str | None, model_id: str,
           uploads: Sequence[Upload] = (), carried: Sequence[Attachment] = ()) -> NewTurn:
    """Save the question (unless the answer is a regenerated one) below `parent`, with its checked
    files (`uploads`, and copies of `carried` ones), and its answer (streaming), the chat's newest
    message and so the end of the branch it shows; and say what the model will see. A model that
    cannot be routed raises RoutingError, with the answer saved as failed, saying why (in a new
    chat, with nothing saved)."""
    answer = Message(session=session, role=Message.Role.ASSISTANT, state=MessageState.STREAMING, model_id=model_id)
    branch = tree.path_to(parent.pk) if parent else []
    # A pool keeps the conversation on the member that served it last, while that one has it loaded.
    sticky = next((m.served_by for m in reversed(branch) if m.served_by), "")
    route: Route | None = None
    failure: RoutingError | None = None
    try:
        route = resolve(model_id, sticky=sticky)
        answer.model_id = route.requested
        served_by(answer, route)
    except RoutingError as exc:
        failure = exc
        answer.state, answer.error = MessageState.FAILED, str(exc)
    new_chat = session.pk is None
    if new_chat and failure is not None:  # a chat is saved with a first turn that can go somewhere, or not at all
        raise failure
    # Each row in its own statement, not one transaction: on SQLite a transaction holds the only write
    # lock while its thread waits for the GIL between statements, which a burst of sends queues behind
    # (docs/performance.md). A question whose answer could not be saved reads as a failed send. A new
    # chat is the exception: it is saved with its first turn in one transaction, so no chat is ever
    # saved empty, and a refused first message leaves nothing behind.
    try:
        with transaction.atomic() if new_chat else nullcontext():
            if new_chat:
                session.save()
            if question is not None:
                parent = Message.objects.create(session=session, parent=parent, role=Message.Role.USER, content=question)
                if uploads or carried:
                    with transaction.atomic():
                        save_attachments(parent, list(uploads))
                        Attachment.objects.bulk_create(Attachment(message=parent, kind=a.kind, name=a.name,
                                                                  media_type=a.media_type, size=a.size, data=a.data,
                                                                  text=a.text) for a in carried)
                branch.append(parent)
            answer.parent = parent
            answer.save()
    except BaseException:
        if new_chat:
            session.pk = None  # rolled back: not a saved chat
        raise
    if session.shown_leaf_id is not None:  # a branch chosen with ‹ ›: the newest message is shown again
        ChatSession.objects.filter(pk=session.pk).update(shown_leaf=None)
        session.shown_leaf_id = None
    if route is None:
        raise failure or RoutingError(answer.error)
    compaction, history = active_messages(session, branch)
    if any(a.is_image for m in history if m.role == Message.Role.USER for a in m.attachments.all()):
        image_support(str(route.ref))  # what known_to_take_images() reads when the prompt is built
    return NewTurn(route, context_size_for(route.requested).tokens,
                   upstream_messages(route, compaction, history, system_prompt=session.system_prompt), answer,
                   wire_parameters(session.parameters, route))


SAMPLING = ("temperature", "top_p", "max_tokens")


def wire_parameters(parameters: dict[str, Any], route: Route) -> dict[str, Any]:
    """The request fields for a chat's parameters: only those the user set, and reasoning controls
    only where `route`'s model takes them."""
    sent = {name: parameters[name] for name in SAMPLING if name in parameters}
    if "reasoning_effort" in parameters or "thinking" in parameters:
        sent.update(reasoning_for(str(route.ref)).wire(parameters))
    return sent


def begin_turn(session: ChatSession, question: str, uploads: Sequence[Upload] = ()) -> NewTurn:
    """A new question (with its checked files) at the end of the branch the chat shows, to the chat's model;
    a chat not saved yet is saved with it."""
    tree = load_tree(session) if session.pk is not None else Tree([])
    shown = tree.shown(session.shown_leaf_id)
    return _begin(session, tree, shown[-1] if shown else None, question, session.model_id, uploads)


def begin_edit(session: ChatSession, edited: Message, question: str) -> NewTurn:
    """`question` in place of `edited`, with its files: a sibling of it, so the earlier branch stays."""
    tree = load_tree(session)
    parent = tree.by_id.get(edited.parent_id) if edited.parent_id is not None else None
    return _begin(session, tree, parent, question, session.model_id, carried=list(edited.attachments.all()))


def begin_regenerate(session: ChatSession, answer: Message, model_id: str) -> NewTurn:
    """Another answer to `answer`'s question, from `model_id` (any model, on any host)."""
    tree = load_tree(session)
    return _begin(session, tree, tree.by_id[answer.parent_id] if answer.parent_id else None, None, model_id)


def begin_continue(session: ChatSession, answer: Message) -> NewTurn:
    """Ask `answer`'s host to go on from its saved text: the text goes as the last assistant message,
    which llama-server continues (assistant prefill) and DeepSeek takes as a prefix (its beta API,
    `"prefix": true`). The answer streams again, its branch shown; CannotContinue says why not."""
    if not answer.can_continue:
        raise CannotContinue("Only an answer that was stopped, broke off or was cut by the length limit, with some text, "
                             "can be continued.")
    tree = load_tree(session)
    if tree.children.get(answer.pk):
        raise CannotContinue("Only the last answer of a branch can be continued: questions follow this one.")
    branch = tree.path_to(answer.pk)[:-1]
    # A pool's member that wrote it, while it has the model loaded (providers.pools).
    route = resolve(answer.model_id, sticky=answer.served_by)
    compaction, history = active_messages(session, branch)
    messages = upstream_messages(route, compaction, history, system_prompt=session.system_prompt)
    going_on: dict[str, Any] = {"role": "assistant", "content": answer.content}
    if route.kind == ProviderKind.DEEPSEEK:  # prefix completion is on DeepSeek's beta base URL (API docs)
        going_on["prefix"] = True
        route = replace(route, api_base=f"{route.api_base}/beta")
    # updated_at now: an answer stopped long ago must not look like one a dead process left streaming.
    claimed = Message.objects.filter(pk=answer.pk, state=answer.state).update(state=MessageState.STREAMING, error="",
                                                                             updated_at=timezone.now())
    if not claimed:
        raise CannotContinue("This answer changed meanwhile (continued in another tab?): reload the chat.")
    answer.state, answer.error = MessageState.STREAMING, ""
    ChatSession.objects.filter(pk=session.pk).update(shown_leaf=answer.pk)
    return NewTurn(route, context_size_for(route.requested).tokens, [*messages, going_on], answer,
                   wire_parameters(session.parameters, route), prefix=answer.content, prefix_reasoning=answer.reasoning)


async def start_turn(session: ChatSession, turn: NewTurn) -> Turn:
    """Compact if needed and open the stream; one compaction + retry on over-context. Raises
    UpstreamError after saving the failed answer with why."""
    route, n_ctx, messages, answer = turn.route, turn.n_ctx, turn.messages, turn.answer
    scale = 1.0
    try:
        for attempt in (1, 2):
            if attempt == 2 or estimate_tokens(messages) > n_ctx - answer_reserve(n_ctx):
                messages = await prepare_messages(session, route, answer.pk, n_ctx=n_ctx, scale=scale)
                if turn.prefix:  # the text to go on from stays last
                    messages = [*messages, turn.messages[-1]]
            body = {**turn.parameters, "model": route.wire_model, "messages": messages, "stream": True,
                    "stream_options": {"include_usage": True}}
            try:
                route, response = await open_chat_stream(route, body)
                served_by(answer, route)  # a pool's member may have stood in for another
                break
            except UpstreamError as exc:
                if not exc.over_context or attempt == 2:
                    raise
                n_ctx, scale = await learn_from_overflow(route, exc, messages)
    except UpstreamError as exc:
        answer.state, answer.error = MessageState.FAILED, str(exc)
        await database.run(answer.update_fields, "state", "error")
        if turn.meter is not None:
            turn.meter.finish(exc.status)
        raise
    except asyncio.CancelledError:  # Stop, or the tab closed, while the host had not answered yet
        answer.state, answer.error = MessageState.INTERRUPTED, STOPPED_BEFORE_START
        await asyncio.shield(database.run(answer.update_fields, "state", "error"))
        if turn.meter is not None:
            turn.meter.finish(STATUS_STOPPED)
        raise
    return Turn(route, response, answer, turn.prefix, turn.prefix_reasoning, turn.meter)
