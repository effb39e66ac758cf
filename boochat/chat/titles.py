"""Titles for chats, from a small task model when that costs no model swap."""

from __future__ import annotations

import dataclasses
import logging
import re
from datetime import timedelta

import httpx
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from boochat.models import ChatSession, Message, MessageState
from boochat.proxy import complete_chat
from providers.catalog import DOWN, load_catalog
from providers.routing import Route, RoutingError, aresolve, canonical_model_id
from providers.upstream import UpstreamError, answer_text

logger = logging.getLogger(__name__)

TITLE_PROMPT = (
    "Write a title of at most six words for the conversation below. Answer with the title only: "
    "no quotes, no trailing punctuation."
)


def task_model_candidates(session_model_id: str) -> list[str]:
    """Models to try for a title, best first (README, "Task model").

    The task model goes first when its host is up and using it needs no swap. On a llama-swap host
    where the task model is not loaded, the session's own model goes first if it is loaded there
    (or anywhere): a title is not worth unloading a model someone is chatting with."""
    session_model = canonical_model_id(session_model_id)
    task = settings.BOOCHAT_TASK_MODEL
    if not task:
        return [session_model]
    try:
        task = canonical_model_id(task)
    except RoutingError:
        logger.warning("BOOCHAT_TASK_MODEL=%s cannot be routed; using the session's model", task)
        return [session_model]
    if task == session_model:
        return [task]
    catalog = load_catalog()
    by_id = catalog.by_id()
    states = {p.slug: p.state for p in catalog.providers}

    def ready(model_id: str) -> bool:
        model = by_id.get(model_id)
        return model is not None and states.get(model.provider) != DOWN and model.loaded is not False

    if ready(task) or not ready(session_model):
        return [task, session_model]
    return [session_model, task]


def _title_source(session: ChatSession) -> list[Message]:
    return list(session.messages.exclude(state=MessageState.FAILED).order_by("id")[:2])


def clean_title(text: str) -> str:
    """The first line of a model's answer, without quotes, Markdown marks or end punctuation."""
    line = next((line for line in text.strip().splitlines() if line.strip()), "")
    line = re.sub(r"[*_`#]+", "", line)
    return line.strip().strip("\"'“”‘’").strip().rstrip(".!?:;")[:80].strip()


def claim_title(session: ChatSession) -> bool:
    """Whether this request writes the session's title: the first to ask since it has none, in any
    process of any instance (a claim older than twice the task timeout has died with its process)."""
    now = timezone.now()
    stale = now - timedelta(seconds=2 * settings.BOOCHAT_TASK_TIMEOUT)
    unclaimed = Q(title_claimed_at__isnull=True) | Q(title_claimed_at__lt=stale)
    return ChatSession.objects.filter(unclaimed, pk=session.pk, title="").update(title_claimed_at=now) == 1


def with_task_timeout(route: Route) -> Route:
    """`route` waiting at most BOOCHAT_TASK_TIMEOUT seconds for the host: a title is not worth more."""
    read = min(route.timeout.read or settings.BOOCHAT_TASK_TIMEOUT, settings.BOOCHAT_TASK_TIMEOUT)
    return dataclasses.replace(route, timeout=httpx.Timeout(read, connect=route.timeout.connect))


async def generate_title(session: ChatSession) -> str:
    """A short title from the task model (or a fallback); saved on the session and returned. Asked
    once per session, however many requests want it at the same time."""
    first = await sync_to_async(_title_source)(session)
    if not first or not await sync_to_async(claim_title)(session):
        return session.title
    transcript = "\n\n".join(f"{m.role.upper()}: {m.content[:1500]}" for m in first)
    title = ""
    for model_id in await sync_to_async(task_model_candidates)(session.model_id):
        try:
            route = with_task_timeout(await aresolve(model_id))
            answer = await complete_chat(
                route,
                [{"role": "system", "content": TITLE_PROMPT}, {"role": "user", "content": transcript}],
                max_tokens=60,
            )
        except (RoutingError, UpstreamError) as exc:
            logger.info("title from %s failed: %s", model_id, exc)
            continue
        if title := clean_title(answer_text(answer)):
            break
    if not title:  # every model failed: the first words of the question are still a fine title
        title = " ".join(first[0].content.split()[:8])[:80] or "New chat"
    session.title = title
    # An update, not save(): the chat may have been deleted meanwhile, and must not come back.
    await ChatSession.objects.filter(pk=session.pk).aupdate(title=title, updated_at=timezone.now())
    return title
