"""Tidying the chat list: archive, the trash (delete, undo, restore), folders, and doing these to
several chats at once."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.db import IntegrityError, transaction
from django.http import HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from boochat.models import ChatSession, Folder
from settings_app.requests import HtmxHttpRequest
from settings_app.text import unstorable

FOLDER_NAME_MAX = 100
UNDO_KEY = "boochat_undo_trash"  # the chats the last delete put in the trash, for its Undo button
BULK_ACTIONS = {"archive", "unarchive", "delete", "restore", "destroy", "move"}


def _plural(count: int, word: str = "chat") -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


def _refuse(message: str, status: int = 400) -> HttpResponse:
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


def _back(request: HtmxHttpRequest, fallback: str = "chat_index") -> HttpResponseBase:
    """Where a plain form came from (`next`, a path of this site), else `fallback`."""
    target = request.POST.get("next", "")
    safe = target.startswith("/") and url_has_allowed_host_and_scheme(target, allowed_hosts=None)
    return redirect(target if safe else fallback)


def trash(request: HtmxHttpRequest, chats: list[ChatSession]) -> None:
    """Move `chats` to the trash (or delete them, with BOOCHAT_TRASH_DAYS=0) and say so, with Undo."""
    ids = [chat.pk for chat in chats]
    ChatSession.objects.filter(pk__in=ids).move_to_trash()
    ChatSession.objects.empty_trash()
    named = f"“{chats[0]}”" if len(chats) == 1 else _plural(len(chats))
    if settings.BOOCHAT_TRASH_DAYS <= 0:
        messages.success(request, f"Deleted {named}.")
        return
    request.session[UNDO_KEY] = ids
    messages.success(request, f"Moved {named} to the trash (kept {settings.BOOCHAT_TRASH_DAYS} days).")


def undo_offer(request: HtmxHttpRequest) -> list[int]:
    """The chats the last delete trashed, offered once on the next page (its Undo button)."""
    ids = request.session.pop(UNDO_KEY, None)
    return [pk for pk in ids if isinstance(pk, int)] if isinstance(ids, list) else []


@require_POST
def chat_archive(request: HtmxHttpRequest, pk: int) -> HttpResponseBase:
    """Archive (`archived=1`) or restore (`archived=0`) a chat: out of the list, still found by search."""
    session = get_object_or_404(ChatSession.objects.for_user(request.user), pk=pk)
    archive = request.POST.get("archived", "1") == "1"
    ChatSession.objects.filter(pk=session.pk).update(archived_at=timezone.now() if archive else None)
    messages.success(request, f"Archived “{session}”." if archive else f"“{session}” is back in the list.")
    return redirect("chat_index" if archive else session.get_absolute_url())


@require_POST
def chat_restore(request: HtmxHttpRequest) -> HttpResponseBase:
    """Take the posted `chats` out of the trash (the Undo of a delete)."""
    ids = [int(pk) for pk in request.POST.getlist("chats") if pk.isdigit()]
    restored = ChatSession.objects.in_trash(request.user).filter(pk__in=ids).update(deleted_at=None)
    if not restored:
        messages.error(request, "Nothing to restore: those chats are not in the trash (deleted for good?).")
        return _back(request)
    messages.success(request, f"Restored {_plural(restored)}.")
    return _back(request)


@require_GET
def chat_archived(request: HtmxHttpRequest) -> TemplateResponse:
    """The user's archived chats, to open, restore or delete."""
    chats = ChatSession.objects.for_user(request.user).filter(archived_at__isnull=False).order_by("-archived_at", "-id")
    return TemplateResponse(request, "chat_shelf.html", {"shelf": "archived", "chats": chats, "undo": undo_offer(request)})


@require_GET
def chat_trash(request: HtmxHttpRequest) -> TemplateResponse:
    """The chats in the trash, restorable until BOOCHAT_TRASH_DAYS have passed."""
    ChatSession.objects.empty_trash()
    return TemplateResponse(request, "chat_shelf.html", {"shelf": "trash", "chats": ChatSession.objects.in_trash(request.user),
                                                         "days": settings.BOOCHAT_TRASH_DAYS, "undo": undo_offer(request)})


@require_POST
def chat_bulk(request: HtmxHttpRequest) -> HttpResponseBase:
    """One `action` on the posted `chats`: archive, unarchive, delete (to the trash), restore or destroy
    (from the trash), move (to `folder`, or out of folders when empty)."""
    action = request.POST.get("action", "")
    if action not in BULK_ACTIONS:
        return _refuse(f"Unknown action {action[:40]!r}: say archive, unarchive, delete, restore, destroy or move.")
    raw = request.POST.getlist("chats")
    if not raw:
        messages.error(request, "Select the chats first.")
        return _back(request)
    if not all(pk.isdigit() for pk in raw):
        return _refuse("Chats are named by their numbers.")
    ids = {int(pk) for pk in raw}
    in_trash = action in ("restore", "destroy")
    chosen = (ChatSession.objects.in_trash(request.user) if in_trash else ChatSession.objects.for_user(request.user)).filter(pk__in=ids)
    chats = list(chosen.only("id", "title"))
    if len(chats) != len(ids):
        # Another tab deleted or moved some meanwhile: nothing is done, so nothing is done by half.
        messages.error(request, f"Nothing was done: {_plural(len(ids) - len(chats))} of those "
                                f"{'are not in the trash' if in_trash else 'no longer exist'}.")
        return _back(request)
    chosen = ChatSession.objects.filter(pk__in=ids)
    if action == "move":
        folder_id = request.POST.get("folder", "")
        folder = Folder.objects.filter(user=request.user, pk=folder_id).first() if folder_id.isdigit() else None
        if folder_id and folder is None:
            messages.error(request, "Nothing was moved: that folder does not exist (deleted meanwhile?).")
            return _back(request)
        chosen.update(folder=folder)
        messages.success(request, f"Moved {_plural(len(chats))} to {f'“{folder}”' if folder else 'no folder'}.")
    elif action == "archive":
        chosen.update(archived_at=timezone.now())
        messages.success(request, f"Archived {_plural(len(chats))}.")
    elif action == "unarchive":
        chosen.update(archived_at=None)
        messages.success(request, f"Put {_plural(len(chats))} back in the list.")
    elif action == "delete":
        trash(request, chats)
    elif action == "restore":
        chosen.update(deleted_at=None)
        messages.success(request, f"Restored {_plural(len(chats))}.")
    else:
        chosen.delete()
        messages.success(request, f"Deleted {_plural(len(chats))} for good.")
    return _back(request)


def _folder_name(request: HtmxHttpRequest) -> tuple[str, str]:
    """The posted folder name, and what is wrong with it ("" when nothing)."""
    name = " ".join(request.POST.get("name", "").split())
    if problem := unstorable(name):
        return name, f"The folder name contains {problem}, which cannot be stored."
    if not name:
        return name, "Name the folder."
    if len(name) > FOLDER_NAME_MAX:
        return name, f"A folder name has at most {FOLDER_NAME_MAX} characters."
    return name, ""


def _save_folder(request: HtmxHttpRequest, folder: Folder, name: str) -> bool:
    folder.name = name
    try:
        with transaction.atomic():
            folder.save()
    except IntegrityError:  # the unique name, also when two tabs create it at once
        messages.error(request, f"You have a folder named “{name}” already.")
        return False
    return True


@require_POST
def folder_create(request: HtmxHttpRequest) -> HttpResponseBase:
    """A new folder named `name`; with `chats`, those chats move into it."""
    name, error = _folder_name(request)
    if error:
        messages.error(request, f"No folder made: {error}")
        return _back(request)
    folder = Folder(user=request.user)
    if _save_folder(request, folder, name):
        moved = ChatSession.objects.for_user(request.user).filter(
            pk__in=[int(pk) for pk in request.POST.getlist("chats") if pk.isdigit()]).update(folder=folder)
        messages.success(request, f"Made the folder “{name}”" + (f" with {_plural(moved)}." if moved else "."))
    return _back(request)


@require_POST
def folder_rename(request: HtmxHttpRequest, pk: int) -> HttpResponseBase:
    """Rename one of the user's folders."""
    folder = get_object_or_404(Folder, user=request.user, pk=pk)
    name, error = _folder_name(request)
    if error:
        messages.error(request, f"Not renamed: {error}")
    elif _save_folder(request, folder, name):
        messages.success(request, f"Renamed the folder to “{name}”.")
    return _back(request)


@require_POST
def folder_delete(request: HtmxHttpRequest, pk: int) -> HttpResponseBase:
    """Delete a folder; its chats stay, out of any folder."""
    folder = get_object_or_404(Folder, user=request.user, pk=pk)
    count = folder.chats.count()
    folder.delete()
    messages.success(request, f"Deleted the folder “{folder}”" + (f"; its {_plural(count)} stay, in no folder." if count else "."))
    return _back(request)
