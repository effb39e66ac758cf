"""What the model sees of a chat: the messages after the latest compaction, in OpenAI's shape."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from django.db.models import prefetch_related_objects

from boochat.chat.attachments import IMAGE_TOKENS, content_tokens, prompt_content
from boochat.chat.branches import Tree
from boochat.models import ChatSession, Compaction, Message, MessageState
from providers.models import ProviderKind
from providers.routing import Route


def estimate_tokens(messages: list[dict[str, Any]]) -> int:
    """A deliberately high estimate (3 characters a token, plus template tokens per message, plus a
    high guess per image)."""
    counts = [content_tokens(m.get("content")) for m in messages]
    return sum(math.ceil(chars / 3) + 4 + images * IMAGE_TOKENS for chars, images in counts)


def answer_reserve(n_ctx: int) -> int:
    """Tokens kept free for the answer."""
    return min(2048, n_ctx // 4)


def _sendable(messages: Iterable[Message]) -> list[Message]:
    return [m for m in messages if m.role == Message.Role.USER or m.content or m.tool_calls]


def load_tree(session: ChatSession) -> Tree:
    """Every message of the chat, as the tree of its branches (the fields the model sees)."""
    return Tree(Message.objects.filter(session=session)
                .only("id", "session_id", "parent_id", "role", "content", "tool_calls", "reasoning", "state", "served_by"))


def active_messages(session: ChatSession, branch: list[Message]) -> tuple[Compaction | None, list[Message]]:
    """The latest compaction of `branch` and its messages after it that still go to the model."""
    on_branch = {m.pk for m in branch}
    compaction = next((c for c in session.compactions.order_by("-through_message_id")
                       if c.through_message_id in on_branch), None)
    through = compaction.through_message_id if compaction else 0
    active = _sendable(m for m in branch if m.pk > through and m.state not in (MessageState.FAILED, MessageState.STREAMING))
    prefetch_related_objects([m for m in active if m.role == Message.Role.USER], "attachments")  # one query
    return compaction, active


def active_messages_to(session: ChatSession, leaf_id: int) -> tuple[Compaction | None, list[Message]]:
    """active_messages() of the branch that ends at `leaf_id`."""
    return active_messages(session, load_tree(session).path_to(leaf_id))


def upstream_messages(route: Route, compaction: Compaction | None, messages: list[Message], *,
                      system_prompt: str = "") -> list[dict[str, Any]]:
    """OpenAI chat messages for `route`'s host: the chat's system prompt first when it has one."""
    result: list[dict[str, Any]] = [{"role": "system", "content": system_prompt}] if system_prompt else []
    if compaction is not None:
        result.append({"role": "system", "content": f"Summary of the earlier conversation:\n{compaction.summary}"})
    for message in messages:
        item: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.role == Message.Role.USER and (attachments := list(message.attachments.all())):
            item["content"] = prompt_content(message, attachments, model_id=str(route.ref))
        if message.tool_calls:
            item["tool_calls"] = message.tool_calls
            # DeepSeek's thinking mode needs its reasoning back on turns that called tools, and
            # refuses it elsewhere (older R1); no other host gets it (DeepSeek API docs).
            if route.kind == ProviderKind.DEEPSEEK and message.reasoning:
                item["reasoning_content"] = message.reasoning
        result.append(item)
    return result
