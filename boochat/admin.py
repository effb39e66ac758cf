from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin
from django.contrib.auth.models import Group
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from boochat.gateway.keys import create_key
from boochat.models import GatewayKey, Limits, SharedChat, UsageRecord
from providers.models import ModelAccess

LIMIT_FIELDS = ("requests_per_minute", "tokens_per_day", "concurrent_streams")


@admin.register(GatewayKey)
class GatewayKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "last_used_from", "expires_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), ("expires_at", admin.EmptyFieldListFilter)]
    list_select_related = ["user"]
    search_fields = ["name", "prefix", "user__username"]
    raw_id_fields = ["user"]
    fields = ["user", "name", "scope", "expires_at", *LIMIT_FIELDS, "prefix", "created_at", "last_used_at",
              "last_used_from", "revoked_at"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "last_used_from", "revoked_at"]
    actions = ["revoke"]

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, str | list[str]]:
        return {"user": str(request.user.pk), **super().get_changeform_initial_data(request)}

    def save_model(self, request: HttpRequest, obj: GatewayKey, form, change: bool) -> None:  # noqa: ANN001
        if change:
            super().save_model(request, obj, form, change)
            return
        row, key = create_key(user=obj.user, name=obj.name, expires_at=obj.expires_at, scope=obj.scope or (),
                              **{name: getattr(obj, name) for name in LIMIT_FIELDS})
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


@admin.register(Limits)
class LimitsAdmin(admin.ModelAdmin):
    list_display = ["__str__", *LIMIT_FIELDS]
    list_select_related = ["user", "group"]
    raw_id_fields = ["user"]
    fields = ["user", "group", *LIMIT_FIELDS]


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    list_display = ["at", "user", "key", "source", "model_id", "served_by", "prompt_tokens", "completion_tokens",
                    "cached_tokens", "ttfb_ms", "duration_ms", "status"]
    list_filter = ["source", "status"]
    list_select_related = ["user", "key"]
    search_fields = ["model_id", "served_by", "user__username"]
    date_hierarchy = "at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: UsageRecord | None = None) -> bool:
        return False


class ModelAccessInline(admin.StackedInline):
    model = ModelAccess
    can_delete = True
    extra = 0


class GroupLimitsInline(admin.StackedInline):
    model = Limits
    fields = LIMIT_FIELDS
    extra = 0
    verbose_name = "default limits of its members"


admin.site.unregister(Group)


@admin.register(Group)
class GroupWithAccessAdmin(GroupAdmin):
    """Django's group admin with the models the group's members may use and their default limits."""

    inlines = [ModelAccessInline, GroupLimitsInline]
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
