from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from boochat.gateway.keys import create_key
from boochat.models import GatewayKey, SharedChat


@admin.register(GatewayKey)
class GatewayKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix"]
    fields = ["name", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def save_model(self, request: HttpRequest, obj: GatewayKey, form, change: bool) -> None:  # noqa: ANN001
        if change:
            super().save_model(request, obj, form, change)
            return
        row, key = create_key(name=obj.name)
        obj.pk, obj.prefix, obj.key_hash = row.pk, row.prefix, row.key_hash
        obj.new_key = key  # for response_add only: never stored, logged or put in a cookie

    def response_add(self, request: HttpRequest, obj: GatewayKey, post_url_continue: str | None = None) -> HttpResponse:
        """Show the new key once, on its own page (not in a message, which would travel in a cookie)."""
        context = {**self.admin_site.each_context(request), "row": obj, "key": obj.new_key,
                   "title": "Gateway key created"}
        return TemplateResponse(request, "admin/boochat/gatewaykey/created.html", context)

    def has_delete_permission(self, request: HttpRequest, obj: GatewayKey | None = None) -> bool:
        return False  # revoke instead: the row keeps who had access and when

    @admin.action(description="Revoke the selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[GatewayKey]) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} key(s).", messages.SUCCESS)


@admin.register(SharedChat)
class SharedChatAdmin(admin.ModelAdmin):
    """Shared links, so staff can revoke one that leaked; the token itself is not shown."""

    list_display = ["title", "session", "created_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["title", "session__user__username"]
    list_select_related = ["session"]
    fields = ["title", "session", "created_at", "revoked_at"]
    readonly_fields = ["title", "session", "created_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # shared from the chat page, by its owner

    @admin.action(description="Revoke the selected links")
    def revoke(self, request: HttpRequest, queryset: QuerySet[SharedChat]) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} link(s): they answer 404 now.", messages.SUCCESS)
