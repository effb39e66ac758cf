from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from tools.catalog import builtin_connections, cached_servers, connection_for, refresh_now
from tools.models import ToolServer


class ToolServerForm(forms.ModelForm):
    """The bearer secret is write-only: a new value replaces it; the page never holds the stored one."""

    new_bearer_secret = forms.CharField(
        label="Bearer secret", required=False, strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Sent as Authorization: Bearer …. Never shown again; leave empty to keep the current one.",
    )
    clear_bearer_secret = forms.BooleanField(label="Remove the stored bearer secret", required=False)

    class Meta:
        model = ToolServer
        fields = "__all__"

    def save(self, commit: bool = True) -> ToolServer:
        server = super().save(commit=False)
        if self.cleaned_data.get("clear_bearer_secret"):
            server.bearer_secret = ""
        elif secret := self.cleaned_data.get("new_bearer_secret"):
            server.bearer_secret = secret
        if commit:
            server.save()
            self.save_m2m()
        return server


@admin.register(ToolServer)
class ToolServerAdmin(admin.ModelAdmin):
    form = ToolServerForm
    list_display = ["slug", "name", "url", "transport", "approval", "enabled", "allowed_groups", "from_file", "health",
                    "tool_names"]
    list_filter = ["enabled", "transport", "approval", "from_file"]
    search_fields = ["slug", "name", "url"]
    filter_horizontal = ["groups"]
    actions = ["check_now", "enable", "disable"]
    fieldsets = [
        (None, {"fields": ["slug", "name", "url", "transport", "headers"]}),
        ("Authentication", {"fields": ["secret_state", "new_bearer_secret", "clear_bearer_secret", "api_key_env"]}),
        ("Use", {"fields": ["enabled", "approval", "groups"]}),
        ("State", {"fields": ["health", "tool_list", "from_file", "created_at", "updated_at"]}),
    ]
    _always_readonly = ["secret_state", "health", "tool_list", "from_file", "created_at", "updated_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ToolServer]:
        return super().get_queryset(request).prefetch_related("groups")

    def get_fieldsets(self, request: HttpRequest, obj: ToolServer | None = None) -> Any:
        if obj is not None and obj.from_file:  # the file holds its secret too (api_key_env): no form fields for it
            return [(name, {"fields": [f for f in opts["fields"] if f not in ("new_bearer_secret", "clear_bearer_secret")]})
                    for name, opts in self.fieldsets]
        return self.fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: ToolServer | None = None) -> list[str]:
        if obj is not None and obj.from_file:
            # The provider file is the source of truth for its rows: an edit here would be undone at the next sync.
            return ["slug", "name", "url", "transport", "headers", "api_key_env", "enabled", "approval", "groups",
                    *self._always_readonly]
        return [*self._always_readonly, *(["slug"] if obj is not None else [])]

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None):  # noqa: ANN001
        obj = self.get_object(request, object_id)
        if obj is not None and obj.from_file and request.method == "GET":
            messages.info(request, "This tool server comes from the provider file (LLAMA_PROVIDERS_PATH): edit it there.")
        return super().change_view(request, object_id, form_url, extra_context)

    def changelist_view(self, request: HttpRequest, extra_context=None):  # noqa: ANN001
        if request.method == "GET":
            for server in cached_servers(builtin_connections()):  # not rows: settings turn them on
                state = "up" if server.up else "not listed yet" if server.checked_at is None else f"down: {server.error}"
                tools = ", ".join(t.name for t in server.tools) or "none listed"
                messages.info(request, f"Built in: {server.name} ({server.slug}), for every user, each call asked: "
                                       f"{state}; tools: {tools}.")
        return super().changelist_view(request, extra_context)

    def has_delete_permission(self, request: HttpRequest, obj: ToolServer | None = None) -> bool:
        return not (obj is not None and obj.from_file) and super().has_delete_permission(request, obj)

    @admin.display(description="Bearer secret")
    def secret_state(self, obj: ToolServer) -> str:
        if obj.api_key_env:
            return f"from the environment variable {obj.api_key_env}"
        return "stored (not shown)" if obj.bearer_secret else "none"

    @admin.display(description="Groups")
    def allowed_groups(self, obj: ToolServer) -> str:
        return ", ".join(group.name for group in obj.groups.all()) or "every user"

    @admin.display(description="Health")
    def health(self, obj: ToolServer) -> str:
        if obj.pk is None:
            return "—"
        if not obj.enabled:
            return "disabled"
        (server,) = cached_servers([connection_for(obj)])  # no wait: an old or missing list is refreshed behind
        if server.checked_at is None:
            return "not listed yet"
        return "up" if server.up else f"down: {server.error}"

    @admin.display(description="Tools")
    def tool_names(self, obj: ToolServer) -> str:
        if obj.pk is None or not obj.enabled:
            return "—"
        (server,) = cached_servers([connection_for(obj)])
        return ", ".join(tool.name for tool in server.tools) or "—"

    @admin.display(description="Tools")
    def tool_list(self, obj: ToolServer) -> str:
        if obj.pk is None or not obj.enabled:
            return "—"
        (server,) = cached_servers([connection_for(obj)])
        if not server.tools:
            return "none listed"
        rows = format_html_join("", "<li><code>{}</code> {}</li>", ((t.name, t.description) for t in server.tools))
        return format_html("<ul>{}</ul>", rows)

    @admin.action(description="Check the selected servers now (list their tools)")
    def check_now(self, request: HttpRequest, queryset: QuerySet[ToolServer]) -> None:
        rows = list(queryset.filter(enabled=True))
        refresh_now([connection_for(row) for row in rows])
        for server in cached_servers([connection_for(row) for row in rows]):
            if server.up:
                names = ", ".join(t.name for t in server.tools) or "no tools"
                self.message_user(request, f"{server.name}: up, {len(server.tools)} tool(s): {names}", messages.SUCCESS)
            else:
                self.message_user(request, f"{server.name}: down: {server.error}", messages.ERROR)
        if disabled := queryset.filter(enabled=False).count():
            self.message_user(request, f"{disabled} disabled server(s) not checked.", messages.WARNING)

    @admin.action(description="Enable the selected servers")
    def enable(self, request: HttpRequest, queryset: QuerySet[ToolServer]) -> None:
        count = queryset.filter(from_file=False).update(enabled=True)
        self.message_user(request, f"Enabled {count} server(s); rows from the provider file are edited there.")

    @admin.action(description="Disable the selected servers")
    def disable(self, request: HttpRequest, queryset: QuerySet[ToolServer]) -> None:
        count = queryset.filter(from_file=False).update(enabled=False)
        self.message_user(request, f"Disabled {count} server(s); rows from the provider file are edited there.")
