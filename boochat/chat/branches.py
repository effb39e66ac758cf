"""A chat is a tree of messages: an edited question and a regenerated answer are siblings of the ones
they replace. The page shows one branch, from a first message down to the chat's shown leaf, and
each message on it says which of its siblings it is ("2/3"). A long branch is shown a page of turns
at a time, the latest first."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from boochat.models import ChatSession, Message


@dataclass(frozen=True)
class Siblings:
    position: int  # from 1, oldest first
    count: int
    previous: int | None  # the sibling before, to show instead
    next: int | None


class Node(Protocol):
    """What the tree needs of a message: a Message, or a Shape row when only the shape is loaded."""

    @property
    def pk(self) -> Any: ...

    @property
    def parent_id(self) -> Any: ...


@dataclass(frozen=True)
class Shape:
    """A message's place in the tree and its role, without its content."""

    pk: int
    parent_id: int | None
    role: str


N = TypeVar("N", bound=Node)


class Tree(Generic[N]):
    def __init__(self, messages: Iterable[N]) -> None:
        self.by_id: dict[int, N] = {m.pk: m for m in messages}
        self.children: dict[int | None, list[N]] = defaultdict(list)
        for message in sorted(self.by_id.values(), key=lambda m: m.pk):
            self.children[message.parent_id].append(message)

    @classmethod
    def shape_of(cls, session: ChatSession) -> Tree[Shape]:
        """The tree of a chat's messages, each an id, a parent and a role: one query, no contents."""
        return Tree(Shape(*row) for row in Message.objects.filter(session=session).values_list("id", "parent_id", "role"))

    def path_to(self, message_id: int | None) -> list[N]:
        """The branch from a first message down to `message_id` (nothing for None or an unknown id)."""
        path: list[N] = []
        message = self.by_id.get(message_id) if message_id is not None else None
        while message is not None and len(path) <= len(self.by_id):
            path.append(message)
            message = self.by_id.get(message.parent_id) if message.parent_id is not None else None
        return path[::-1]

    def latest_leaf(self, message: Node) -> N:
        """The end of the newest branch below `message`."""
        found = self.by_id[message.pk]
        while replies := self.children.get(found.pk):
            found = replies[-1]
        return found

    def shown(self, leaf_id: int | None) -> list[N]:
        """The branch a chat shows: down to the leaf chosen with ‹ ›, else down to its newest message
        (the end of the branch the last send, edit or regenerate made)."""
        if leaf_id not in self.by_id:
            leaf_id = max(self.by_id, default=None)
        return self.path_to(leaf_id)

    def siblings(self, message: Node) -> Siblings:
        row = self.children[message.parent_id]
        index = next(i for i, m in enumerate(row) if m.pk == message.pk)
        return Siblings(index + 1, len(row), row[index - 1].pk if index else None,
                        row[index + 1].pk if index + 1 < len(row) else None)

    def navigation(self, branch: Iterable[Node]) -> dict[int, Siblings]:
        """For each message of `branch` that has siblings, where it stands among them."""
        return {m.pk: self.siblings(m) for m in branch if len(self.children[m.parent_id]) > 1}


def turns_of(branch: Sequence[Shape]) -> list[list[Shape]]:
    """`branch` cut into turns: a question and the answers after it (a branch may begin with answers)."""
    turns: list[list[Shape]] = []
    for message in branch:
        if not turns or message.role == Message.Role.USER:
            turns.append([])
        turns[-1].append(message)
    return turns


@dataclass(frozen=True)
class Page:
    """The turns of a branch shown at once: `messages` (ids, in order); `earlier`, the `before` that
    asks for the page of turns before them (None at the start of the branch); `later`, whether turns
    follow them, and `later_before`, the `before` of the page after (None: the latest turns)."""

    messages: list[int]
    earlier: int | None
    later: bool
    later_before: int | None


def page_of(branch: Sequence[Shape], size: int, *, before: int | None = None, around: int | None = None) -> Page:
    """The `size` latest turns of `branch`; or those before the turn that holds message `before`; or
    a page that holds message `around`. An id that is not on the branch counts as none."""
    turns = turns_of(branch)
    turn_of = {m.pk: index for index, turn in enumerate(turns) for m in turn}
    end = len(turns)
    if before is not None and before in turn_of:
        end = turn_of[before]
    elif around is not None and around in turn_of:
        end = min(len(turns), turn_of[around] + size)
    start = max(0, end - size)
    return Page([m.pk for turn in turns[start:end] for m in turn],
                earlier=turns[start][0].pk if start > 0 else None,
                later=end < len(turns),
                later_before=turns[end + size][0].pk if end + size < len(turns) else None)
