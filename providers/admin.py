from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from providers import control
from providers.catalog import UP, load_catalog
from providers.models import ModelAccess, ModelOverride, Provider, ProviderSource
from providers.routing import RoutingError, endpoint_for
from providers.sync import default_from_file


def _managed_by_file(obj: Provider | ModelOverride | None) -> bool:
    provider = obj.provider if isinstance(obj, ModelOverride) else obj
    return provider is not None and provider.source == ProviderSource.FILE


class ModelOverrideInline(admin.TabularInline):
    model = ModelOverride
    extra = 0
    fields = ["model", "display_name", "context_size", "hidden", "purpose", "accepts_images", "calls_tools", "new_chats", "slots", "members"]

    def has_add_permission(self, request: HttpRequest, obj: Provider | None = None) -> bool:
        return not _managed_by_file(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Provider | None = None) -> bool:
        return not _managed_by_file(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Provider | None = None) -> bool:
        return not _managed_by_file(obj) and super().has_delete_permission(request, obj)


def _file_decides_default(slug: str) -> str | None:
    """Why `slug` cannot be made the default here, or None if it can."""
    chosen = default_from_file()
    if chosen is None or chosen == slug:
        return None
    return (f"The provider file ({settings.LLAMA_PROVIDERS_PATH}) makes {chosen} the default: change "
            f"\"default\" there (each start and HUP applies the file).")


class ProviderForm(forms.ModelForm):
    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("is_default") and (reason := _file_decides_default(cleaned.get("slug") or self.instance.slug)):
            self.add_error("is_default", reason)
        return cleaned


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    form = ProviderForm
    list_display = ["slug", "name", "kind", "base_url", "sidecar_url", "enabled", "is_default", "source", "loaded_models"]
    list_filter = ["kind", "enabled", "source"]
    search_fields = ["slug", "name", "base_url"]
    inlines = [ModelOverrideInline]
    actions = ["test_connection", "make_default", "enable", "disable", "unload_all_models"]
    fieldsets = [
        (None, {"fields": ["slug", "name", "kind", "base_url", "sidecar_url", "api_key_env"]}),
        ("Routing", {"fields": ["enabled", "is_default", "strategy"]}),
        ("Timeouts", {"fields": ["connect_timeout", "read_timeout", "models_timeout"]}),
        ("Origin", {"fields": ["source", "created_at", "updated_at"]}),
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: Provider | None = None) -> list[str]:
        readonly = ["source", "created_at", "updated_at"]
        if _managed_by_file(obj):
            # The file is the source of truth for its rows: an edit here would be undone at the next sync.
            return list(flatten_fieldsets(self.fieldsets))
        if obj is not None:
            readonly.append("slug")  # composite ids stored in sessions and favorites start with it
        return readonly

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None):  # noqa: ANN001
        obj = self.get_object(request, object_id)
        if _managed_by_file(obj) and request.method == "GET":
            messages.info(request, "This provider comes from the provider file (LLAMA_PROVIDERS_PATH): edit it there.")
        return super().change_view(request, object_id, form_url, extra_context)

    def has_delete_permission(self, request: HttpRequest, obj: Provider | None = None) -> bool:
        return not _managed_by_file(obj) and super().has_delete_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: Provider, form, change: bool) -> None:  # noqa: ANN001
        with transaction.atomic():
            others = Provider.objects.exclude(pk=obj.pk)
            if obj.is_default:
                others.filter(is_default=True).update(is_default=False)
            elif obj.enabled and not others.filter(is_default=True).exists():
                obj.is_default = True
                messages.info(request, f"{obj.slug} is now the default provider: there must be one.")
            super().save_model(request, obj, form, change)

    @admin.action(description="Test the selected providers (fetch their model lists now)")
    def test_connection(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        catalog = load_catalog(providers=queryset.filter(enabled=True).prefetch_related("overrides"), background=False)
        for status in catalog.providers:
            if status.state == UP or status.state == "slow":
                names = ", ".join(m.display_name for m in status.models[:8])
                more = f" and {len(status.models) - 8} more" if len(status.models) > 8 else ""
                self.message_user(
                    request,
                    f"Provider {status.slug}: {status.state}, {status.latency_ms} ms, {len(status.models)} models ({names}{more})",
                    messages.SUCCESS if status.state == UP else messages.WARNING,
                )
            else:
                self.message_user(request, f"Provider {status.slug}: down: {status.last_error}", messages.ERROR)
        if disabled := queryset.filter(enabled=False).count():
            self.message_user(request, f"{disabled} disabled provider(s) not tested.", messages.WARNING)

    @admin.display(description="Loaded models")
    def loaded_models(self, obj: Provider) -> str:
        if obj.kind not in control.CONTROLLED_KINDS:
            return "—"
        return format_html('<a href="{}">see, load, unload</a>', reverse("host_models", args=[obj.slug]))

    @admin.action(description="Unload every model on the selected hosts", permissions=["control_models"])
    def unload_all_models(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        for provider in queryset.filter(kind__in=control.CONTROLLED_KINDS, enabled=True):
            try:
                self.message_user(request, control.unload_all(endpoint_for(provider)))
            except (control.ControlError, RoutingError) as exc:
                self.message_user(request, f"{provider.slug}: {exc}", messages.ERROR)

    def has_control_models_permission(self, request: HttpRequest) -> bool:
        return request.user.is_staff or request.user.has_perm("providers.control_models")

    @admin.action(description="Make the selected provider the default")
    def make_default(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one provider to make it the default.", messages.ERROR)
            return
        provider = queryset.get()
        if _managed_by_file(provider) or not provider.enabled:
            self.message_user(
                request, f"{provider.slug} must be enabled and not come from the provider file.", messages.ERROR
            )
            return
        if reason := _file_decides_default(provider.slug):
            self.message_user(request, reason, messages.ERROR)
            return
        Provider.objects.make_default(provider)
        self.message_user(request, f"{provider.slug} is now the default provider.")

    @admin.action(description="Enable the selected providers")
    def enable(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        count = queryset.exclude(source=ProviderSource.FILE).update(enabled=True)
        self.message_user(request, f"Enabled {count} provider(s); rows from the provider file are edited there.")

    @admin.action(description="Disable the selected providers")
    def disable(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        editable = queryset.exclude(source=ProviderSource.FILE)
        if editable.filter(is_default=True).exists():
            self.message_user(request, "Make another provider the default before disabling this one.", messages.ERROR)
            return
        count = editable.update(enabled=False)
        self.message_user(request, f"Disabled {count} provider(s); rows from the provider file are edited there.")


@admin.register(ModelOverride)
class ModelOverrideAdmin(admin.ModelAdmin):
    list_display = ["model", "provider", "display_name", "context_size", "hidden", "purpose", "accepts_images",
                    "calls_tools", "new_chats", "members"]
    list_filter = ["provider", "hidden", "new_chats"]
    search_fields = ["model", "display_name", "provider__slug"]
    list_select_related = ["provider"]

    def get_readonly_fields(self, request: HttpRequest, obj: ModelOverride | None = None) -> list[str]:
        if _managed_by_file(obj):
            return ["provider", "model", "display_name", "context_size", "hidden", "purpose", "accepts_images", "calls_tools",
                    "new_chats", "members"]
        return []

    def has_delete_permission(self, request: HttpRequest, obj: ModelOverride | None = None) -> bool:
        return not _managed_by_file(obj) and super().has_delete_permission(request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):  # noqa: ANN001, ANN201
        if db_field.name == "provider":
            kwargs["queryset"] = Provider.objects.exclude(source=ProviderSource.FILE)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(ModelAccess)
class ModelAccessAdmin(admin.ModelAdmin):
    list_display = ["group", "patterns"]
    search_fields = ["group__name", "patterns"]
