"""A chat is a tree of messages: an edited question and a regenerated answer are siblings of the ones
they replace. The page shows one branch, from a first message down to the chat's shown leaf, and
each message on it says which of its siblings it is ("2/3")."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from boochat.models import Message


@dataclass(frozen=True)
class Siblings:
    position: int  # from 1, oldest first
    count: int
    previous: int | None  # the sibling before, to show instead
    next: int | None


class Tree:
    def __init__(self, messages: Iterable[Message]) -> None:
        self.by_id = {m.pk: m for m in messages}
        self.children: dict[int | None, list[Message]] = defaultdict(list)
        for message in sorted(self.by_id.values(), key=lambda m: m.pk):
            self.children[message.parent_id].append(message)

    def path_to(self, message_id: int | None) -> list[Message]:
        """The branch from a first message down to `message_id` (nothing for None or an unknown id)."""
        path: list[Message] = []
        message = self.by_id.get(message_id) if message_id is not None else None
        while message is not None and len(path) <= len(self.by_id):
            path.append(message)
            message = self.by_id.get(message.parent_id) if message.parent_id is not None else None
        return path[::-1]

    def latest_leaf(self, message: Message) -> Message:
        """The end of the newest branch below `message`."""
        while replies := self.children.get(message.pk):
            message = replies[-1]
        return message

    def shown(self, leaf_id: int | None) -> list[Message]:
        """The branch a chat shows: down to the leaf chosen with ‹ ›, else down to its newest message
        (the end of the branch the last send, edit or regenerate made)."""
        if leaf_id not in self.by_id:
            leaf_id = max(self.by_id, default=None)
        return self.path_to(leaf_id)

    def siblings(self, message: Message) -> Siblings:
        row = self.children[message.parent_id]
        index = next(i for i, m in enumerate(row) if m.pk == message.pk)
        return Siblings(index + 1, len(row), row[index - 1].pk if index else None,
                        row[index + 1].pk if index + 1 < len(row) else None)

    def navigation(self, branch: list[Message]) -> dict[int, Siblings]:
        """For each message of `branch` that has siblings, where it stands among them."""
        return {m.pk: self.siblings(m) for m in branch if len(self.children[m.parent_id]) > 1}
