"""Searching a user's chats: titles and message text, PostgreSQL's full-text search where it runs,
every word as a substring elsewhere; each hit with a snippet whose matches are marked."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.contrib.postgres.search import SearchQuery, SearchVector
from django.db import connection
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from boochat.models import ChatSession, Message

MAX_HITS = 50
SNIPPET = 80  # characters each side of the first match


@dataclass(frozen=True)
class Hit:
    session: ChatSession
    message: Message | None  # None: the title matched
    snippet: SafeString


def highlight(text: str, words: list[str]) -> SafeString:
    """A snippet of `text` around the first of `words`, escaped, each word wrapped in <mark>."""
    pattern = re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE)
    first = pattern.search(text)
    start = max(0, first.start() - SNIPPET) if first else 0
    piece = text[start:start + 2 * SNIPPET + (len(first.group()) if first else 0)]
    marked = pattern.sub(lambda m: f"\0{m.group()}\1", piece)
    html = escape(marked).replace("\0", "<mark>").replace("\1", "</mark>")
    return mark_safe(("…" if start else "") + html + ("…" if start + len(piece) < len(text) else ""))


def search_chats(user: User, query: str) -> list[Hit]:
    """Chats of `user` whose title, or one of whose messages, matches `query`; newest first. Archived
    chats are found too; chats in the trash are not."""
    words = query.split()
    if not words:
        return []
    titles = ChatSession.objects.for_user(user)
    messages = Message.objects.filter(session__user=user, session__deleted_at__isnull=True).select_related("session")
    for word in words:
        titles = titles.filter(title__icontains=word)
    if connection.vendor == "postgresql":
        messages = messages.annotate(text=SearchVector("content", config="simple")).filter(
            text=SearchQuery(query, config="simple", search_type="websearch"))
    else:
        for word in words:
            messages = messages.filter(content__icontains=word)
    hits = [Hit(s, None, highlight(str(s), words)) for s in titles[:MAX_HITS]]
    hits += [Hit(m.session, m, highlight(m.content, words)) for m in messages.order_by("-id")[:MAX_HITS]]
    return hits[:MAX_HITS]
