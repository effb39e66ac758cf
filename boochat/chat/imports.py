"""Importing chats from the JSON exports of BooChat, Open WebUI and ChatGPT. The whole file is read
and checked first: a bad file imports nothing and says where it is bad."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from boochat.models import TITLE_MAX_LENGTH, ChatSession, Message
from providers.catalog import load_catalog
from providers.routing import RoutingError, canonical_model_id


class BadExport(ValueError):
    """A file that cannot be imported; the message says which chat and what is wrong."""


@dataclass
class ImportedChat:
    title: str
    model: str  # as the file names it
    messages: list[tuple[str, str, str]] = field(default_factory=list)  # role, text, model
    # Each message's parent, as an index into `messages` (None: a first message); one branch when unset.
    parents: list[int | None] | None = None
    shown: int | None = None  # the index of the message the chat shows, when the file says


@dataclass
class Report:
    chats: int = 0
    messages: int = 0
    mapped: dict[str, str] = field(default_factory=dict)  # model as named in the file -> composite id
    unknown: set[str] = field(default_factory=set)  # models kept as text


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _boochat(chat: dict[str, Any]) -> ImportedChat:
    listed = [m for m in chat.get("messages", []) if isinstance(m, dict) and m.get("role") in ("user", "assistant")]
    result = ImportedChat(_text(chat.get("title")), _text(chat.get("model")), [
        (m["role"], _text(m.get("content")), _text(m.get("model"))) for m in listed])
    if all("id" in m for m in listed):  # branches: each message names the one it follows
        index = {m["id"]: i for i, m in enumerate(listed)}
        result.parents = []
        for i, m in enumerate(listed):
            parent = m.get("parent")
            if parent is not None and index.get(parent, i) >= i:
                raise BadExport(f"Message {i + 1} follows a message that is not before it in the chat.")
            result.parents.append(None if parent is None else index[parent])
        result.shown = index.get(chat.get("shown"))
    return result


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
            chat.parents.append(above)
            above = len(chat.messages) - 1
        place[key] = above
        stack.extend((child, above) for child in reversed(children[key]))
    chat.shown = place.get(current)
    return chat


def _open_webui(chat: dict[str, Any]) -> ImportedChat:
    body: dict[str, Any] = chat["chat"] if isinstance(chat.get("chat"), dict) else chat
    history: dict[str, Any] = body["history"] if isinstance(body.get("history"), dict) else {}
    models = body["models"] if isinstance(body.get("models"), list) else []
    result = ImportedChat(_text(chat.get("title") or body.get("title")), _text(models[0]) if models else "")

    def message_of(m: dict[str, Any]) -> tuple[str, str, str] | None:
        return (m["role"], _text(m.get("content")), _text(m.get("model"))) if m.get("role") in ("user", "assistant") else None

    nodes = history.get("messages")
    if isinstance(nodes, dict) and nodes:  # the whole tree, every edit and regeneration
        return _tree(result, nodes, "parentId", message_of, history.get("currentId"))
    listed = body["messages"] if isinstance(body.get("messages"), list) else []
    result.messages = [m for m in map(message_of, (m for m in listed if isinstance(m, dict))) if m is not None]
    return result


def _chatgpt(chat: dict[str, Any]) -> ImportedChat:
    result = ImportedChat(_text(chat.get("title")), "")

    def message_of(entry: dict[str, Any]) -> tuple[str, str, str] | None:
        message = entry.get("message")
        if not isinstance(message, dict) or (message.get("author") or {}).get("role") not in ("user", "assistant"):
            return None
        parts = (message.get("content") or {}).get("parts") or []
        text = "\n".join(part for part in parts if isinstance(part, str)).strip()
        slug = _text((message.get("metadata") or {}).get("model_slug"))
        result.model = result.model or slug
        return (message["author"]["role"], text, slug) if text else None

    mapping = chat.get("mapping")
    return _tree(result, mapping if isinstance(mapping, dict) else {}, "parent", message_of, chat.get("current_node"))


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
        if not result.messages:
            raise BadExport(f"Chat {index + 1} ({result.title or 'untitled'}) has no messages.")
        imported.append(result)
    return imported


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


@transaction.atomic
def import_chats(user: User, chats: list[ImportedChat]) -> Report:
    """Save the chats (all or none); models found among the hosts get their composite ids."""
    names = {chat.model for chat in chats} | {m[2] for chat in chats for m in chat.messages}
    names.discard("")
    mapped = _model_map(names)
    report = Report(mapped={n: mapped[n] for n in names if n in mapped}, unknown=names - set(mapped))
    for chat in chats:
        session = ChatSession.objects.create(user=user, title=chat.title[:TITLE_MAX_LENGTH],
                                             model_id=mapped.get(chat.model, chat.model)[:330])
        rows = []
        for role, text, model in chat.messages:
            composite = mapped.get(model, "")
            provider, _, wire = composite.partition("/")
            rows.append(Message(session=session, role=role, content=text, model_id=(composite or model)[:330],
                                provider=provider, wire_model=(wire or model)[:255]))
        Message.objects.bulk_create(rows)
        parents = chat.parents if chat.parents is not None else [i - 1 if i else None for i in range(len(rows))]
        for row, parent in zip(rows, parents, strict=True):
            row.parent = None if parent is None else rows[parent]
        Message.objects.bulk_update(rows, ["parent"])
        if chat.shown is not None:
            ChatSession.objects.filter(pk=session.pk).update(shown_leaf=rows[chat.shown])
        report.chats += 1
        report.messages += len(rows)
    return report
