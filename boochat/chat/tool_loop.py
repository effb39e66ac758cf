"""Tools in a chat's answer: which of them the model is offered, and one round of its calls (approval,
the call, its result), each step told to the page as an SSE `event: tool` and saved in the answer's
`tool_rounds` (boochat.models.Message), so a reload or another tab shows where the round is.

The answer's job (boochat.chat.jobs) asks the host again with the results after each round, at most
BOOCHAT_TOOL_MAX_STEPS rounds. Every tool goes through the same path, built-in web search included."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.utils import timezone

from boochat import database
from boochat.chat.prompt import estimate_tokens
from boochat.models import ChatSession, Message, MessageState, ToolDecision
from providers.capabilities import tool_support
from tools.catalog import ServerTools, Tool, ToolResult, call_tool, servers_for

DENIED = "The user denied this call."


def chosen_tools(selection: list[str], servers: list[ServerTools]) -> dict[str, Tool]:
    """The tools a chat turned on (whole servers by slug, single tools by function name), among those
    its user may use now, by function name."""
    wanted = set(selection)
    return {tool.function_name: tool for server in servers for tool in server.tools
            if server.slug in wanted or tool.function_name in wanted}


async def offered_tools(session: ChatSession, user: User, model_id: str) -> dict[str, Tool]:
    """The tools an answer of the chat offers its model (`model_id`: the one it goes to, which a
    regenerated answer chooses): none unless that model calls tools."""
    if not session.tools or (await database.run(lambda: tool_support(model_id))).calls is not True:
        return {}  # tool_support() says None for a model it cannot route: the send says why
    return chosen_tools(session.tools, await servers_for(user))


def schema(tool: Tool) -> dict[str, Any]:
    """The tool as an OpenAI `tools` entry."""
    return {"type": "function", "function": {"name": tool.function_name, "description": tool.description,
                                             "parameters": tool.input_schema or {"type": "object", "properties": {}}}}


def tool_event(round_index: int, call: dict[str, Any]) -> bytes:
    """One step of a call, for the page: the call as it is now (its block is replaced by it)."""
    data = json.dumps({"round": round_index, "call": call}, separators=(",", ":"), ensure_ascii=False)
    return b"event: tool\ndata: " + data.encode()


def new_round(text: str, reasoning: str, tool_calls: list[dict[str, Any]]) -> dict[str, Any]:
    """A round as the model asked it: its text and its calls (assembled from the streamed deltas)."""
    return {"text": text, "reasoning": reasoning, "calls": [
        {"id": call.get("id") or f"call_{index}", "function": call["function"]["name"],
         "arguments": call["function"]["arguments"], "result": "", "is_error": False, "duration_ms": None,
         "approval": "", "state": "waiting"}
        for index, call in enumerate(tool_calls)]}


def not_run(round_: dict[str, Any], why: str) -> None:
    """Mark the calls of `round_` that did not finish as not run, saying why."""
    for call in round_["calls"]:
        if call["state"] != "done":
            call.update(result=why, is_error=True, state="done")


def shortened(result: str, keep: int) -> str:
    """A tool result cut to its first `keep` characters for the model, saying so."""
    return f"{result[:keep]}\n[result shortened to fit the context: {keep} of {len(result)} characters]"


def fit_results(messages: list[dict[str, Any]], first: int, *, budget: int, scale: float = 1.0, extra: int = 0) -> bool:
    """Shorten the `tool` messages of `messages[first:]` (this answer's results, oldest first) until
    the whole estimates within `budget` tokens (with `extra` tokens more, the tools' schemas; times
    `scale`, how far the estimate fell short of the host's own count); False if even all of them cut
    to nothing do not fit. Only these copies are cut: the saved results stay whole."""
    def over() -> int:
        return math.ceil((estimate_tokens(messages) + extra) * scale) - budget

    for item in messages[first:]:
        if (excess := over()) <= 0:
            return True
        if item.get("role") == "tool":
            whole = item["content"]
            cut = math.ceil(excess / scale) * 3 + len(shortened(whole, len(whole))) - len(whole)
            if len(cut_down := shortened(whole, max(0, len(whole) - cut))) < len(whole):
                item["content"] = cut_down
    return over() <= 0


class Stopped(Exception):
    """Stop reached the answer while it waited on a tool (marked in the database from elsewhere)."""


STILL_ALIVE_SECONDS = 30.0


class Watch:
    """What an answer waiting on a tool listens to: the user's decisions (`decided` is set by the view
    in the job's process, or through Redis from another; the database is read each second anyway)
    and Stop from elsewhere (its row marked). Its row is touched every STILL_ALIVE_SECONDS meanwhile,
    so that a long wait never looks like an answer a dead process left streaming."""

    def __init__(self, answer_pk: int, decided: asyncio.Event) -> None:
        self.answer_pk = answer_pk
        self.decided = decided
        self.touched = 0.0

    async def check(self) -> None:
        """Stopped if the answer was stopped from elsewhere."""
        touch = time.monotonic() - self.touched > STILL_ALIVE_SECONDS
        if touch:
            self.touched = time.monotonic()
        if not await database.run(_still_streaming, self.answer_pk, touch):
            raise Stopped

    async def decision(self, call_id: str) -> str:
        """The user's choice for the call (a ToolDecision.Choice), once made."""
        while True:
            self.decided.clear()  # before the read: a decision saved during it still wakes the wait below
            if choice := await database.run(_decided, self.answer_pk, call_id):
                return choice
            await self.check()
            try:
                await asyncio.wait_for(self.decided.wait(), timeout=1.0)
            except TimeoutError:
                pass


def _still_streaming(answer_pk: int, touch: bool) -> bool:
    rows = Message.objects.filter(pk=answer_pk, state=MessageState.STREAMING)
    return bool(rows.update(updated_at=timezone.now())) if touch else rows.exists()


def _decided(answer_pk: int, call_id: str) -> str:
    return ToolDecision.objects.filter(answer_id=answer_pk, call_id=call_id).values_list("choice", flat=True).first() or ""


def _context(session_pk: int) -> tuple[User, set[str]]:
    """The chat's user (whose permissions each call checks) and the tools it always runs."""
    session = ChatSession.objects.select_related("user").get(pk=session_pk)
    return session.user, set(session.tools_always)


async def run_round(round_index: int, round_: dict[str, Any], *, answer: Message, session: ChatSession,
                    offered: dict[str, Tool], publish: Callable[[bytes], None], watch: Watch) -> None:
    """Run the round's calls one after the other: each waits for the user's approval when its server
    asks for it (unless "Always for this chat" was chosen for it), then is called; its result is
    saved in `round_` and the answer. Stop here cancels the task, and the call with it; from
    elsewhere, `watch` raises Stopped."""
    user, always = await database.run(_context, session.pk)

    async def save() -> None:
        await database.run(answer.update_fields, "content", "reasoning", "tool_calls", "tool_rounds")

    for call in round_["calls"]:
        tool = offered.get(call["function"])
        try:
            arguments = json.loads(call["arguments"] or "{}")
        except ValueError as exc:
            arguments, problem = None, f"The arguments are not valid JSON ({exc}); the call was not made."
        else:
            problem = "" if isinstance(arguments, dict) else "The arguments must be a JSON object; the call was not made."
        if tool is None:
            problem = f"There is no tool {call['function']!r} in this chat; the call was not made."
        if problem:
            call.update(result=problem, is_error=True, duration_ms=0, state="done")
        elif tool is not None and tool.needs_approval and call["function"] not in always:
            publish(tool_event(round_index, call))
            await save()
            call["approval"] = await watch.decision(call["id"])
            if call["approval"] == ToolDecision.Choice.ALWAYS:
                always.add(call["function"])
        else:
            call["approval"] = "auto"
        if call["approval"] == ToolDecision.Choice.DENY:
            call.update(result=DENIED, duration_ms=0, state="done")
        elif call["state"] != "done":
            call["state"] = "running"
            publish(tool_event(round_index, call))
            await save()
            result = await _call_watched(user, call["function"], arguments or {}, watch)
            call.update(result=result.text, is_error=result.is_error, duration_ms=result.duration_ms, state="done")
        publish(tool_event(round_index, call))
        await save()


async def _call_watched(user: User, function_name: str, arguments: dict[str, Any], watch: Watch) -> ToolResult:
    """call_tool(), stopped (the call closed) when Stop reaches the answer, here or from elsewhere."""
    call = asyncio.ensure_future(call_tool(user, function_name, arguments, timeout=settings.BOOCHAT_TOOL_TIMEOUT))
    try:
        while not call.done():
            await asyncio.wait({call}, timeout=1.0)
            if not call.done():
                await watch.check()
        return call.result()
    finally:
        call.cancel()
