"""Chats written out for people (Markdown) and for programs (JSON, one chat or all of a user's)."""

from __future__ import annotations

import re
from typing import Any

from django.contrib.auth.models import User

from boochat.models import ChatSession, Message

FORMAT = "boochat.chat/1"


def chat_as_json(session: ChatSession, messages: list[Message]) -> dict[str, Any]:
    """One chat with every message of every branch, as it is stored (failed and interrupted answers
    included); each message names the one it follows, and `shown` the end of the branch shown."""
    return {
        "format": FORMAT,
        "title": str(session),
        "model": session.model_id,
        **({"system_prompt": session.system_prompt} if session.system_prompt else {}),
        "pinned": session.pinned,
        "created_at": session.created_at.isoformat(),
        "shown": session.shown_leaf_id,
        "messages": [
            {
                "id": m.pk,
                "parent": m.parent_id,
                "role": m.role,
                "content": m.content,
                **({"reasoning": m.reasoning} if m.reasoning else {}),
                **({"tool_rounds": m.tool_rounds} if m.tool_rounds else {}),
                **({"model": m.model_id, "provider": m.provider, "state": m.state} if m.is_answer else {}),
                **({"error": m.error} if m.error else {}),
                **({"usage": m.usage} if m.usage else {}),
                "created_at": m.created_at.isoformat(),
            }
            for m in messages
        ],
    }


def all_chats_as_json(user: User) -> dict[str, Any]:
    """Every chat of `user`, newest first."""
    sessions = ChatSession.objects.for_user(user).prefetch_related("messages")
    return {"format": "boochat.chats/1", "chats": [chat_as_json(s, list(s.messages.all())) for s in sessions]}


def chat_as_markdown(session: ChatSession, messages: list[Message]) -> str:
    """The conversation as a Markdown document: each turn under a heading naming who spoke."""
    parts = [f"# {session}", "", f"Model: `{session.model_id}`", ""]
    for message in messages:
        if message.is_answer:
            parts.append(f"## {message.wire_model or message.model_id} · {message.provider}")
            if message.reasoning:
                parts += ["", "<details><summary>Reasoning</summary>", "", message.reasoning, "", "</details>"]
        else:
            parts.append("## You")
        for round_ in message.tool_rounds:
            if round_.get("text"):
                parts += ["", round_["text"]]
            for call in round_.get("calls") or []:
                outcome = "error" if call.get("is_error") else "result"
                parts += ["", f"<details><summary>Tool {call['function']} ({outcome})</summary>", "",
                          *fenced(call["arguments"], "json"), "", *fenced(call.get("result", "")), "", "</details>"]
        parts += ["", message.content]
        if message.error:
            parts += ["", f"> {message.get_state_display()}: {message.error}"]
        parts.append("")
    return "\n".join(parts)


def fenced(text: str, language: str = "") -> list[str]:
    """`text` as a Markdown code block, its fence longer than any run of backticks in it."""
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", text)), default=0))
    return [fence + language, text, fence]


def filename(session: ChatSession, extension: str) -> str:
    """A download name from the title: letters, digits and dashes only."""
    stem = "".join(c if c.isalnum() else "-" for c in str(session).lower()).strip("-")
    return f"{'-'.join(filter(None, stem.split('-')))[:60] or 'chat'}.{extension}"
