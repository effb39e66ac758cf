"""Importing chats from the JSON exports of BooChat, Open WebUI and ChatGPT. The whole file is read
and checked first: a bad file imports nothing and says where it is bad. The rows are written parents
first, in batches, within BOOCHAT_IMPORT_TIMEOUT; a file past BOOCHAT_MAX_IMPORT_MESSAGES is refused."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import OperationalError, connection, transaction
from django.db.models import F

from boochat.models import TITLE_MAX_LENGTH, ChatSession, Message
from providers.catalog import load_catalog
from providers.routing import RoutingError, canonical_model_id
from settings_app.text import cut, unstorable

# Rows per INSERT or UPDATE: each statement stays small whatever the file (one UPDATE of 100,000
# CASE branches kept PostgreSQL busy for half an hour, deaf to cancellation).
BATCH_SIZE = 500
# Parents within a batch are set by the distance between ids, one UPDATE per distance; past this many
# distances (a file listing siblings far apart) one batched bulk_update does it instead.
MAX_DISTANCES = 8


class BadExport(ValueError):
    """A file that cannot be imported; the message says which chat and what is wrong."""

    status = 400


class ImportTimeout(BadExport):
    """The database did not finish the import in time; nothing of it was kept."""

    status = 503


@dataclass
class ImportedChat:
    title: str
    model: str  # as the file names it
    messages: list[tuple[str, str, str]] = field(default_factory=list)  # role, text, model
    # Each message's parent, as an index into `messages` (None: a first message); one branch when unset.
    parents: list[int | None] | None = None
    shown: int | None = None  # the index of the message the chat shows, when the file says
    names: list[str] = field(default_factory=list)  # how the file names each message, for errors
    left_out: int = 0  # messages in a cycle of parents, which no first message leads to
    system_prompt: str = ""
    tool_rounds: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # by message index (BooChat's files)


@dataclass
class Report:
    chats: int = 0
    messages: int = 0
    mapped: dict[str, str] = field(default_factory=dict)  # model as named in the file -> composite id
    unknown: set[str] = field(default_factory=set)  # models kept as text
    left_out: int = 0  # messages in cycles, not imported
    continued: int = 0  # chats whose model no host serves, set to continue with the model chosen


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _boochat(chat: dict[str, Any]) -> ImportedChat:
    numbered = [(n, m) for n, m in enumerate(chat.get("messages", []), 1)
                if isinstance(m, dict) and m.get("role") in ("user", "assistant")]
    listed = [m for _, m in numbered]
    result = ImportedChat(_text(chat.get("title")), _text(chat.get("model")), [
        (m["role"], _text(m.get("content")), _text(m.get("model"))) for m in listed], names=[f"message {n}" for n, _ in numbered])
    if all("id" in m for m in listed):  # branches: each message names the one it follows
        index = {m["id"]: i for i, m in enumerate(listed)}
        result.parents = []
        for i, m in enumerate(listed):
            parent = m.get("parent")
            if parent is not None and index.get(parent, i) >= i:
                raise BadExport(f"Message {numbered[i][0]} follows a message that is not before it in the chat.")
            result.parents.append(None if parent is None else index[parent])
        result.shown = index.get(chat.get("shown"))
    result.system_prompt = _text(chat.get("system_prompt"))
    for i, m in enumerate(listed):
        if m.get("tool_rounds"):
            result.tool_rounds[i] = _tool_rounds(m["tool_rounds"], numbered[i][0])
    return result


_CALL_TEXT = ("id", "function", "arguments", "result")


def _tool_rounds(value: Any, number: int) -> list[dict[str, Any]]:
    """An answer's tool rounds as BooChat exports them, checked and keeping only their known fields."""
    where = f"Message {number}: its tool_rounds"
    if not isinstance(value, list) or not all(isinstance(r, dict) and isinstance(r.get("calls"), list) for r in value):
        raise BadExport(f"{where} must be a list of rounds, each with a list of calls.")
    rounds = []
    for round_ in value:
        calls = []
        for call in round_["calls"]:
            if not isinstance(call, dict) or not all(isinstance(call.get(key), str) for key in _CALL_TEXT[:3]):
                raise BadExport(f"{where}: each call needs an id, a function and its arguments as text.")
            texts = [_text(call.get(key)) for key in _CALL_TEXT]
            if problem := next(filter(None, map(unstorable, texts)), None):
                raise BadExport(f"{where}: a call contains {problem}, which cannot be stored.")
            duration = call.get("duration_ms")
            calls.append({**dict(zip(_CALL_TEXT, texts, strict=True)), "is_error": call.get("is_error") is True,
                          "duration_ms": duration if isinstance(duration, int) and not isinstance(duration, bool) else None,
                          "approval": _text(call.get("approval")), "state": "done"})
        text, reasoning = _text(round_.get("text")), _text(round_.get("reasoning"))
        if problem := unstorable(text) or unstorable(reasoning):
            raise BadExport(f"{where}: a round's text contains {problem}, which cannot be stored.")
        rounds.append({"text": text, "reasoning": reasoning, "calls": calls})
    return rounds


def _tree(chat: ImportedChat, nodes: dict[Any, Any], parent_key: str, message_of: Callable[[Any], tuple[str, str, str] | None],
          current: Any) -> ImportedChat:
    """Fill `chat` from a tree of `nodes` (each naming its parent under `parent_key`), every branch
    kept, parents first; a node `message_of` skips (a system or empty one) passes its place on to its
    children. The branch shown ends at `current` (or its nearest kept ancestor)."""
    children: dict[Any, list[Any]] = defaultdict(list)
    for key, node in nodes.items():
        parent = node.get(parent_key) if isinstance(node, dict) else None
        children[parent if parent in nodes else None].append(key)
    chat.parents, place = [], {}
    stack: list[tuple[Any, int | None]] = [(key, None) for key in reversed(children[None])]
    while stack:  # depth first; a node in a cycle has no root and is never reached
        key, above = stack.pop()
        if key in place:
            continue
        message = message_of(nodes[key]) if isinstance(nodes[key], dict) else None
        if message is not None:
            chat.messages.append(message)
            chat.names.append(f"message “{cut(str(key))}”")
            chat.parents.append(above)
            above = len(chat.messages) - 1
        place[key] = above
        stack.extend((child, above) for child in reversed(children[key]))
    chat.shown = place.get(current)
    chat.left_out = sum(1 for key, node in nodes.items()
                        if key not in place and isinstance(node, dict) and message_of(node) is not None)
    return chat


def _open_webui(chat: dict[str, Any]) -> ImportedChat:
    body: dict[str, Any] = chat["chat"] if isinstance(chat.get("chat"), dict) else chat
    history: dict[str, Any] = body["history"] if isinstance(body.get("history"), dict) else {}
    models = body["models"] if isinstance(body.get("models"), list) else []
    result = ImportedChat(_text(chat.get("title") or body.get("title")), _text(models[0]) if models else "")
    params = body["params"] if isinstance(body.get("params"), dict) else {}
    result.system_prompt = _text(body.get("system")) or _text(params.get("system"))  # the chat's own system prompt

    def message_of(m: dict[str, Any]) -> tuple[str, str, str] | None:
        return (m["role"], _text(m.get("content")), _text(m.get("model"))) if m.get("role") in ("user", "assistant") else None

    nodes = history.get("messages")
    if isinstance(nodes, dict) and nodes:  # the whole tree, every edit and regeneration
        return _tree(result, nodes, "parentId", message_of, history.get("currentId"))
    listed = body["messages"] if isinstance(body.get("messages"), list) else []
    for n, m in enumerate(listed, 1):
        if isinstance(m, dict) and (message := message_of(m)) is not None:
            result.messages.append(message)
            result.names.append(f"message {n}")
    return result


def _chatgpt(chat: dict[str, Any]) -> ImportedChat:
    result = ImportedChat(_text(chat.get("title")), "")

    def message_of(entry: dict[str, Any]) -> tuple[str, str, str] | None:
        message = entry.get("message")
        if isinstance(message, dict) and (message.get("author") or {}).get("role") == "system":
            result.system_prompt = result.system_prompt or _system_text(message)
        if not isinstance(message, dict) or (message.get("author") or {}).get("role") not in ("user", "assistant"):
            return None
        parts = (message.get("content") or {}).get("parts") or []
        text = "\n".join(part for part in parts if isinstance(part, str)).strip()
        slug = _text((message.get("metadata") or {}).get("model_slug"))
        result.model = result.model or slug
        return (message["author"]["role"], text, slug) if text else None

    mapping = chat.get("mapping")
    return _tree(result, mapping if isinstance(mapping, dict) else {}, "parent", message_of, chat.get("current_node"))


def _system_text(message: dict[str, Any]) -> str:
    """A ChatGPT system message's text: its parts, or the custom instructions it carries (the user's
    profile and instructions, content type user_editable_context)."""
    content: dict[str, Any] = message["content"] if isinstance(message.get("content"), dict) else {}
    pieces = [part for part in content.get("parts") or [] if isinstance(part, str)]
    pieces += [_text(content.get(name)) for name in ("user_profile", "user_instructions")]
    return "\n\n".join(piece.strip() for piece in pieces if piece.strip())


def read_export(raw: bytes) -> list[ImportedChat]:
    """The chats of an export file; BadExport naming the problem otherwise."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadExport("The file is not JSON.") from None
    if isinstance(data, dict) and data.get("format") == "boochat.chats/1":
        chats, read = data.get("chats"), _boochat
    elif isinstance(data, dict) and data.get("format") == "boochat.chat/1":
        chats, read = [data], _boochat
    elif isinstance(data, list) and data and all(isinstance(c, dict) and "mapping" in c for c in data):
        chats, read = data, _chatgpt
    elif isinstance(data, list) and data and all(isinstance(c, dict) and ("chat" in c or "history" in c) for c in data):
        chats, read = data, _open_webui
    else:
        raise BadExport("This is not an export of BooChat, Open WebUI (chat-export-….json) or ChatGPT "
                           "(conversations.json).")
    if not isinstance(chats, list):
        raise BadExport("The file has no list of chats.")
    imported = []
    for index, chat in enumerate(chats):
        try:
            result = read(chat)
        except (KeyError, TypeError, AttributeError) as exc:
            raise BadExport(f"Chat {index + 1} cannot be read ({type(exc).__name__}: {exc}).") from None
        _check_text(index, result)
        if not result.messages:
            raise BadExport(f"Chat {index + 1} ({cut(result.title) or 'untitled'}) has no messages"
                            + (" outside a cycle of messages that follow each other." if result.left_out else "."))
        imported.append(result)
    total, most = sum(len(chat.messages) for chat in imported), settings.BOOCHAT_MAX_IMPORT_MESSAGES
    if total > most:
        raise BadExport(f"The file holds {total:,} messages; one import takes at most {most:,} "
                        "(BOOCHAT_MAX_IMPORT_MESSAGES). Import its chats in smaller files.")
    return imported


def _check_text(index: int, chat: ImportedChat) -> None:
    """BadExport naming the first title, model or message text of `chat` that no database can store."""
    where = f"Chat {index + 1}"
    for what, value in (("title", chat.title), ("model", chat.model), ("system prompt", chat.system_prompt)):
        if problem := unstorable(value):
            raise BadExport(f"{where}: its {what} contains {problem}, which cannot be stored.")
    where += f" ({cut(chat.title) or 'untitled'})"
    for (_, text, model), name in zip(chat.messages, chat.names, strict=True):
        for what, value in (("text", text), ("model", model)):
            if problem := unstorable(value):
                raise BadExport(f"{where}, {name}: its {what} contains {problem}, which cannot be stored.")


def _model_map(names: set[str]) -> dict[str, str]:
    """Each name as a composite id: one already, or the one host's model of that name; else absent."""
    by_wire: dict[str, list[str]] = {}
    for model in load_catalog().models:
        by_wire.setdefault(model.model, []).append(model.id)
    mapped = {}
    for name in names:
        if "/" in name:
            try:
                mapped[name] = canonical_model_id(name)
                continue
            except RoutingError:
                pass
        if len(by_wire.get(name, [])) == 1:
            mapped[name] = by_wire[name][0]
    return mapped


def import_chats(user: User, chats: list[ImportedChat], *, continue_with: str = "") -> Report:
    """Save the chats (all or none) within BOOCHAT_IMPORT_TIMEOUT; models found among the hosts get
    their composite ids, and a chat whose model no host serves continues with `continue_with` (its
    answers keep the name of the model that wrote them)."""
    names = {chat.model for chat in chats} | {m[2] for chat in chats for m in chat.messages}
    names.discard("")
    mapped = _model_map(names)  # asks the hosts: before the transaction, which holds SQLite's write lock
    report = Report(mapped={n: mapped[n] for n in names if n in mapped}, unknown=names - set(mapped),
                    left_out=sum(chat.left_out for chat in chats))
    rows = [_message_rows(chat, mapped) for chat in chats]  # made before the transaction too: less time locked
    timeout = settings.BOOCHAT_IMPORT_TIMEOUT
    deadline = time.monotonic() + timeout
    try:
        with transaction.atomic():
            if connection.vendor == "postgresql":  # bounds each statement; `deadline` the whole import
                with connection.cursor() as cursor:
                    cursor.execute("SELECT set_config('statement_timeout', %s, true)", [f"{max(1, int(timeout * 1000))}ms"])
            for chat, messages in zip(chats, rows, strict=True):
                model_id = mapped.get(chat.model, "") or continue_with or chat.model
                report.continued += model_id == continue_with != mapped.get(chat.model, "")
                _save_chat(user, chat, messages, model_id, deadline)
                report.chats += 1
                report.messages += len(chat.messages)
    except (OperationalError, ImportTimeout):  # a statement cancelled, SQLite's lock not had, or past the deadline
        raise ImportTimeout(f"The database did not finish the import within {timeout} seconds "
                            "(BOOCHAT_IMPORT_TIMEOUT). Try again later, or import fewer chats at once.") from None
    return report


def _message_rows(chat: ImportedChat, mapped: dict[str, str]) -> list[Message]:
    rows = []
    for index, (role, text, model) in enumerate(chat.messages):
        composite = mapped.get(model, "")
        provider, _, wire = composite.partition("/")
        rows.append(Message(role=role, content=text, model_id=(composite or model)[:330], provider=provider,
                            wire_model=(wire or model)[:255],
                            tool_rounds=chat.tool_rounds.get(index, []) if role == "assistant" else []))
    return rows


def _save_chat(user: User, chat: ImportedChat, rows: list[Message], model_id: str, deadline: float) -> None:
    session = ChatSession.objects.create(user=user, title=chat.title[:TITLE_MAX_LENGTH], model_id=model_id[:330],
                                         system_prompt=chat.system_prompt)
    for row in rows:
        row.session_id = session.pk
    parents = chat.parents if chat.parents is not None else [i - 1 if i else None for i in range(len(rows))]
    _save_messages(rows, parents, deadline)
    if chat.shown is not None:
        ChatSession.objects.filter(pk=session.pk).update(shown_leaf=rows[chat.shown])


def _save_messages(rows: list[Message], parents: list[int | None], deadline: float) -> None:
    """Insert `rows` in batches; each row's parent (an index, always before it) is written with the row
    when an earlier batch saved it, and set right after the insert when it is in the same batch."""
    for start in range(0, len(rows), BATCH_SIZE):
        if time.monotonic() > deadline:
            raise ImportTimeout
        batch = rows[start:start + BATCH_SIZE]
        within: list[tuple[Message, Message]] = []  # (row, parent) both in this batch
        for row, parent in zip(batch, parents[start:start + BATCH_SIZE], strict=True):
            if parent is not None and parent < start:
                row.parent_id = rows[parent].pk
            elif parent is not None:
                within.append((row, rows[parent]))
        Message.objects.bulk_create(batch)  # the ids come back (RETURNING) on PostgreSQL and SQLite
        by_distance: dict[int, list[int]] = defaultdict(list)
        for row, above in within:
            row.parent_id = above.pk
            by_distance[row.pk - above.pk].append(row.pk)
        if len(by_distance) <= MAX_DISTANCES:  # a run of replies has one distance: usually one UPDATE
            for distance, ids in by_distance.items():
                Message.objects.filter(pk__in=ids).update(parent_id=F("id") - distance)
        else:
            Message.objects.bulk_update([row for row, _ in within], ["parent"], batch_size=BATCH_SIZE)
