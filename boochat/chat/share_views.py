"""Sharing a chat: a read-only snapshot of the branch shown, behind a random link that needs no login,
listed under the chat until revoked."""

from __future__ import annotations

import secrets

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from boochat.chat.branches import Tree
from boochat.models import ChatSession, Message, SharedChat
from settings_app.requests import HtmxHttpRequest

SHARED_CALL_FIELDS = ("id", "function", "arguments", "result", "is_error", "duration_ms", "approval", "state")


def snapshot(branch: list[Message]) -> list[dict[str, object]]:
    """The questions and answers of `branch` as a share keeps them: text, an answer's tool calls and
    results (shown read-only, escaped), and the answering model. Attachments are left out (a file may
    hold what its question does not show); their number is kept."""
    return [{"role": m.role, "content": m.content,
             "model": (m.wire_model or m.model_id) if m.is_answer else "",
             "tool_rounds": [{"text": round_.get("text") or "",
                              "calls": [{key: call.get(key) for key in SHARED_CALL_FIELDS} for call in round_.get("calls") or []]}
                             for round_ in m.tool_rounds] if m.is_answer else [],
             "left_out": len(m.attachments.all()) if not m.is_answer else 0}
            for m in branch]


@require_POST
def chat_share(request: HtmxHttpRequest, pk: int) -> HttpResponseBase:
    """Share the branch the chat shows now: a new link each time (earlier links keep their snapshot)."""
    session = get_object_or_404(ChatSession.objects.for_user(request.user), pk=pk)
    branch = Tree(session.messages.prefetch_related("attachments")).shown(session.shown_leaf_id)
    if not branch:
        messages.error(request, "Nothing to share yet: the chat has no messages.")
        return redirect(session)
    share = SharedChat.objects.create(session=session, token=secrets.token_urlsafe(32), title=str(session),
                                      messages=snapshot(branch))
    messages.success(request, f"Shared: anyone with the link {request.build_absolute_uri(share.get_absolute_url())} "
                              "can read this branch as it is now.")
    return redirect(session)


@require_POST
def share_revoke(request: HtmxHttpRequest, pk: int) -> HttpResponseBase:
    """Revoke a share of one of the user's chats: its link answers 404 from now on."""
    share = get_object_or_404(SharedChat.objects.select_related("session"), pk=pk, session__user=request.user)
    SharedChat.objects.filter(pk=share.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    messages.success(request, "The link is revoked: it shows nothing now.")
    return redirect(share.session)


@login_not_required
@require_GET
def shared_chat(request: HtmxHttpRequest, token: str) -> TemplateResponse:
    """A shared snapshot, for anyone with its link; kept out of search engines. Revoked, or its chat
    deleted: 404."""
    share = SharedChat.objects.filter(token=token, revoked_at__isnull=True, session__deleted_at__isnull=True).first()
    if share is None:
        raise Http404("No such shared chat (revoked?).")
    response = TemplateResponse(request, "shared_chat.html", {"share": share})
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Referrer-Policy"] = "no-referrer"  # the token stays out of the Referer of links followed from it
    response["Cache-Control"] = "private, no-store"
    return response
