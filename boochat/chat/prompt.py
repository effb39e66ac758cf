"""What the model sees of a chat: the messages after the latest compaction, in OpenAI's shape."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.db.models import prefetch_related_objects

from boochat.chat.attachments import IMAGE_TOKENS, content_tokens, prompt_content
from boochat.chat.branches import Tree
from boochat.models import Attachment, ChatSession, Compaction, Message, MessageState
from providers.models import ProviderKind
from providers.routing import Route


def estimate_tokens(messages: list[dict[str, Any]]) -> int:
    """A deliberately high estimate (3 characters a token, plus template tokens per message, plus a
    high guess per image)."""
    counts = [content_tokens(m.get("content")) for m in messages]
    calls = sum(len(str(m["tool_calls"])) for m in messages if m.get("tool_calls"))
    return sum(math.ceil(chars / 3) + 4 + images * IMAGE_TOKENS for chars, images in counts) + math.ceil(calls / 3)


def answer_reserve(n_ctx: int) -> int:
    """Tokens kept free for the answer."""
    return min(2048, n_ctx // 4)


def _sendable(messages: Iterable[Message]) -> list[Message]:
    return [m for m in messages if m.role == Message.Role.USER or m.content or m.tool_calls or m.tool_rounds]


PROMPT_FIELDS = ("id", "session_id", "parent_id", "role", "content", "tool_calls", "tool_rounds", "reasoning", "state",
                 "served_by")


def load_tree(session: ChatSession) -> Tree[Message]:
    """Every message of the chat, as the tree of its branches (the fields the model sees)."""
    return Tree(Message.objects.filter(session=session).only(*PROMPT_FIELDS))


def latest_compaction(session: ChatSession, branch_ids: Iterable[int]) -> Compaction | None:
    """The latest compaction of the branch of messages `branch_ids`."""
    on_branch = set(branch_ids)
    return next((c for c in session.compactions.order_by("-through_message_id") if c.through_message_id in on_branch), None)


def _active(branch: Iterable[Message], through: int, *, with_files: bool = True) -> list[Message]:
    active = _sendable(m for m in branch if m.pk > through and m.state not in (MessageState.FAILED, MessageState.STREAMING))
    if with_files:
        prefetch_related_objects([m for m in active if m.role == Message.Role.USER], "attachments")  # one query
    return active


def active_messages(session: ChatSession, branch: list[Message]) -> tuple[Compaction | None, list[Message]]:
    """The latest compaction of `branch` and its messages after it that still go to the model."""
    compaction = latest_compaction(session, (m.pk for m in branch))
    return compaction, _active(branch, compaction.through_message_id if compaction else 0)


def _branch_after(session: ChatSession, branch_ids: Sequence[int], through: int) -> list[Message]:
    wanted = set(branch_ids)
    loaded = {m.pk: m for m in Message.objects.filter(session=session, pk__gt=through).only(*PROMPT_FIELDS) if m.pk in wanted}
    return [loaded[pk] for pk in branch_ids if pk in loaded]


def active_messages_of(session: ChatSession, branch_ids: Sequence[int]) -> tuple[Compaction | None, list[Message]]:
    """active_messages() of the branch of messages `branch_ids`, loading only those after its compaction."""
    compaction = latest_compaction(session, branch_ids)
    through = compaction.through_message_id if compaction else 0
    return compaction, _active(_branch_after(session, branch_ids, through), through)


def estimated_tokens_of(session: ChatSession, route: Route, branch_ids: Sequence[int]) -> int:
    """estimate_tokens() of what `route`'s model would see of the branch of messages `branch_ids`.
    Their files are read in one query: a prefetch costs Django's work per question, seconds for
    thousands of them (docs/performance.md)."""
    compaction = latest_compaction(session, branch_ids)
    through = compaction.through_message_id if compaction else 0
    active = _active(_branch_after(session, branch_ids, through), through, with_files=False)
    files: dict[int, list[Attachment]] = defaultdict(list)
    for attachment in Attachment.objects.filter(message__session=session, message_id__gt=through):
        files[attachment.message_id].append(attachment)
    return estimate_tokens(upstream_messages(route, compaction, active, system_prompt=session.system_prompt, files=files))


def active_messages_to(session: ChatSession, leaf_id: int) -> tuple[Compaction | None, list[Message]]:
    """active_messages() of the branch that ends at `leaf_id`."""
    return active_messages_of(session, [m.pk for m in Tree.shape_of(session).path_to(leaf_id)])


def upstream_messages(route: Route, compaction: Compaction | None, messages: list[Message], *,
                      system_prompt: str = "", files: Mapping[int, list[Attachment]] | None = None) -> list[dict[str, Any]]:
    """OpenAI chat messages for `route`'s host: the chat's system prompt first when it has one.
    `files`: the questions' files by message id, when they were read beforehand."""
    result: list[dict[str, Any]] = [{"role": "system", "content": system_prompt}] if system_prompt else []
    if compaction is not None:
        result.append({"role": "system", "content": f"Summary of the earlier conversation:\n{compaction.summary}"})
    for message in messages:
        result += round_messages(message.tool_rounds, deepseek=route.kind == ProviderKind.DEEPSEEK)
        if message.tool_rounds and not message.content:
            continue  # stopped while it called tools: its calls and results are what it said
        item: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.role == Message.Role.USER and (
                attachments := files.get(message.pk, []) if files is not None else list(message.attachments.all())):
            item["content"] = prompt_content(message, attachments, model_id=str(route.ref))
        if message.tool_calls:
            item["tool_calls"] = message.tool_calls
            # DeepSeek's thinking mode needs its reasoning back on turns that called tools, and
            # refuses it elsewhere (older R1); no other host gets it (DeepSeek API docs).
            if route.kind == ProviderKind.DEEPSEEK and message.reasoning:
                item["reasoning_content"] = message.reasoning
        result.append(item)
    return result


def round_messages(rounds: list[dict[str, Any]], *, deepseek: bool = False) -> list[dict[str, Any]]:
    """An answer's tool rounds as OpenAI messages: each round an assistant message with its
    `tool_calls`, then one `tool` message per call with its result (a call never run, as when the
    answer was stopped before it ran, gets the reason)."""
    result: list[dict[str, Any]] = []
    for round_ in rounds:
        calls = round_.get("calls") or []
        item: dict[str, Any] = {"role": "assistant", "content": round_.get("text") or None, "tool_calls": [
            {"id": call["id"], "type": "function", "function": {"name": call["function"], "arguments": call["arguments"]}}
            for call in calls]}
        if deepseek and round_.get("reasoning"):  # DeepSeek's thinking mode wants it back on tool turns
            item["reasoning_content"] = round_["reasoning"]
        result.append(item)
        result += [{"role": "tool", "tool_call_id": call["id"], "content": call.get("result") or NOT_RUN} for call in calls]
    return result


NOT_RUN = "The call was not run: the answer was stopped first."
