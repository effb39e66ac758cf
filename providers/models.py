"""The provider registry: one row per upstream host or API, plus per-model overrides."""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Q

from providers.ids import (
    LEGACY_NAMESPACE,
    SLUG_MAX_LENGTH,
    InvalidModelId,
    is_valid_slug,
    validate_model_name,
)
from providers.snapshot import SnapshotRowsQuerySet

ENV_VAR_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def validate_slug(value: str) -> None:
    if not is_valid_slug(value):
        raise ValidationError(
            "Use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit "
            f"(at most {SLUG_MAX_LENGTH} characters, no '/')."
        )


def validate_base_url(value: str) -> None:
    """An http(s) URL with a host and nothing after the path (LAN host names without a TLD are fine)."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ValidationError(f"{value!r} is not a valid URL: {exc}.") from None
    if parts.scheme not in ("http", "https"):
        raise ValidationError(f"{value!r} must start with http:// or https://.")
    if not parts.hostname:
        raise ValidationError(f"{value!r} has no host name.")
    if parts.username or parts.password:
        raise ValidationError(f"{value!r} must not carry credentials; use the API key variable.")
    if parts.query or parts.fragment:
        raise ValidationError(f"{value!r} must not have a query string or fragment.")


def validate_env_var_name(value: str) -> None:
    if not ENV_VAR_RE.fullmatch(value):
        raise ValidationError(
            f"{value!r} is not an environment variable name (letters, digits and '_'; "
            "the key itself is never stored here)."
        )


def validate_model_part(value: str) -> None:
    try:
        validate_model_name(value)
    except InvalidModelId as exc:
        raise ValidationError(str(exc).capitalize() + ".") from None


class ProviderKind(models.TextChoices):
    LLAMA_SWAP = "llama_swap", "llama-swap"
    LLAMA_SERVER = "llama_server", "llama-server"
    DEEPSEEK = "deepseek", "DeepSeek"
    OPENAI = "openai", "OpenAI-compatible API"
    POOL = "pool", "Model pool"  # no address: its models are aliases over other providers' models


class PoolStrategy(models.TextChoices):
    CACHE = "cache", "cached prefix, then free slots"
    LEAST_BUSY = "least_busy", "fewest requests in flight"
    ROUND_ROBIN = "round_robin", "round robin"


def check_members(members: Any, kinds: Mapping[str, str]) -> list[str]:
    """A pool model's members: composite ids of models on providers that exist (`kinds`: slug ->
    kind) and are not pools. ValidationError naming the first bad one otherwise."""
    if not isinstance(members, list) or not members:
        raise ValidationError('must be a non-empty list of composite ids like ["sam-desktop/qwen3-8b"]')
    for member in members:
        slug, _, model = member.partition("/") if isinstance(member, str) else ("", "", "")
        if not slug or not model:
            raise ValidationError(f"{json.dumps(member)} is not a composite id (provider/model)")
        validate_model_part(model)
        if slug not in kinds:
            raise ValidationError(f"{member!r}: unknown provider {slug!r}")
        if kinds[slug] == ProviderKind.POOL:
            raise ValidationError(f"{member!r}: a pool cannot be a member of a pool")
    if len(set(members)) != len(members):
        raise ValidationError("lists a member twice")
    return members


class ProviderSource(models.TextChoices):
    ADMIN = "admin", "Admin"
    FILE = "file", "Provider file"
    ENV = "env", "Legacy env vars"


class RegistryQuerySet(SnapshotRowsQuerySet):
    """Rows the routing snapshot holds."""

    snapshot = "providers.routing.registry"


class ProviderQuerySet(RegistryQuerySet):
    def enabled(self) -> ProviderQuerySet:
        return self.filter(enabled=True)

    def default(self) -> Provider | None:
        return self.filter(is_default=True).first()

    def make_default(self, provider: Provider) -> None:
        """Make `provider` the one default, in one transaction (the partial unique index holds)."""
        with transaction.atomic():
            self.filter(is_default=True).exclude(pk=provider.pk).update(is_default=False)
            provider.is_default = True
            provider.save(update_fields=["is_default", "updated_at"])


class Provider(models.Model):
    slug = models.CharField(
        max_length=SLUG_MAX_LENGTH,
        unique=True,
        validators=[validate_slug],
        help_text="The prefix of composite model ids (sam-desktop/qwen3-8b). Cannot be changed later.",
    )
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=ProviderKind.choices, default=ProviderKind.LLAMA_SWAP)
    base_url = models.CharField(
        "base URL",
        max_length=500,
        blank=True,
        validators=[validate_base_url],
        help_text="llama-swap / llama-server: the host root (http://gpu-box:8080). "
        "DeepSeek: https://api.deepseek.com. OpenAI-compatible: the API base including /v1. A pool has none.",
    )
    sidecar_url = models.CharField(
        "sidecar URL",
        max_length=500,
        blank=True,
        validators=[validate_base_url],
        help_text="Optional. When set, chat completions for this provider go through this sidecar.",
    )
    api_key_env = models.CharField(
        "API key variable",
        max_length=100,
        blank=True,
        validators=[validate_env_var_name],
        help_text="Name of the environment variable holding the API key (the key is never stored).",
    )
    enabled = models.BooleanField(default=True)
    is_default = models.BooleanField(
        "default",
        default=False,
        help_text="Bare model ids (no provider prefix) and llama-swap/<model> resolve to this provider.",
    )
    connect_timeout = models.FloatField(default=3.0, help_text="Seconds to open a connection.")
    read_timeout = models.FloatField(
        default=600.0, help_text="Seconds to wait for the next bytes of an answer (a model swap can take minutes)."
    )
    models_timeout = models.FloatField(
        default=2.0, help_text="Seconds the model list may take before the host is shown as slow or down."
    )
    strategy = models.CharField(
        max_length=20, choices=PoolStrategy.choices, default=PoolStrategy.CACHE,
        help_text="Pools only: how a request picks a member among those that can take it.",
    )
    source = models.CharField(
        max_length=10,
        choices=ProviderSource.choices,
        default=ProviderSource.ADMIN,
        editable=False,
        help_text="Where this row comes from. Rows from the provider file are edited in the file.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ProviderQuerySet.as_manager()

    class Meta:
        ordering = ["-is_default", "name", "slug"]
        permissions = [("control_models", "Can load and unload models on a host")]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="providers_one_default"
            ),
            models.CheckConstraint(
                condition=Q(connect_timeout__gt=0) & Q(read_timeout__gt=0) & Q(models_timeout__gt=0),
                name="providers_positive_timeouts",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"

    def clean(self) -> None:
        if self.slug == LEGACY_NAMESPACE:
            raise ValidationError(
                {"slug": f"'{LEGACY_NAMESPACE}' is reserved: ids with that prefix always mean the default provider."}
            )
        if self.is_default and not self.enabled:
            raise ValidationError({"enabled": "The default provider must be enabled."})
        if self.kind == ProviderKind.POOL:
            for name in ("base_url", "sidecar_url", "api_key_env"):
                if getattr(self, name):
                    raise ValidationError({name: "A pool has no address or key: its models' members have them."})
        elif not self.base_url:
            raise ValidationError({"base_url": "This field is required."})

    def validate_constraints(self, exclude: Collection[str] | None = None) -> None:
        # Marking a provider default takes the flag from the previous one in the same transaction
        # (admin save, sync): the database index still guarantees one default, but a form must
        # not refuse the new default because an old one exists.
        exclude = set(exclude or ()) | {"is_default"}
        super().validate_constraints(exclude=exclude)


class ModelPurpose(models.TextChoices):
    AS_LISTED = "", "as the host lists it"
    CHAT = "chat", "chat"
    EMBEDDING = "embedding", "embeddings only"


class ModelOverride(models.Model):
    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="overrides")
    model = models.CharField(
        max_length=255, validators=[validate_model_part], help_text="The model's id on this provider (qwen3-8b)."
    )
    display_name = models.CharField(max_length=200, blank=True)
    context_size = models.PositiveIntegerField(
        null=True, blank=True, help_text="Tokens. Takes precedence over what the host reports."
    )
    hidden = models.BooleanField(default=False, help_text="Hide this model from the picker and the gateway.")
    purpose = models.CharField(
        max_length=10, blank=True, choices=ModelPurpose.choices, default=ModelPurpose.AS_LISTED,
        help_text="Embedding models are not offered for chat. Unset: as the host's list says.",
    )
    members = models.JSONField(
        default=list, blank=True,
        help_text='Pools only: the composite ids this model is served by, in order ["sam-desktop/qwen3-8b", …].',
    )
    slots = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="Requests the host serves at once (llama-server's --parallel). Unset: as its /props says.",
    )
    accepts_images = models.BooleanField(
        "takes images", null=True, blank=True,
        help_text="Unknown: as its host says (llama-server's /props) or its kind (DeepSeek: no). Yes or no wins over both.",
    )
    calls_tools = models.BooleanField(
        "calls tools", null=True, blank=True,
        help_text="Unknown: as its host says (llama-server's /props) or its kind (DeepSeek: yes). Yes or no wins over both.",
    )
    new_chats = models.BooleanField(
        "default for new chats", default=False,
        help_text="New chats start with this model when their user has none of their own "
                  "(BOOCHAT_DEFAULT_MODEL, when set, wins). One model at most.",
    )

    objects = RegistryQuerySet.as_manager()

    class Meta:
        ordering = ["provider", "model"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "model"], name="providers_one_override_per_model"),
            models.UniqueConstraint(fields=["new_chats"], condition=Q(new_chats=True), name="providers_one_default_for_new_chats"),
        ]

    def __str__(self) -> str:
        return f"{self.provider.slug}/{self.model}"

    def clean(self) -> None:
        if self.provider.kind == ProviderKind.POOL:
            kinds = dict(Provider.objects.values_list("slug", "kind"))
            try:
                check_members(self.members, kinds)
            except ValidationError as exc:
                raise ValidationError({"members": exc.messages}) from None
        elif self.members:
            raise ValidationError({"members": "Only a pool's models have members."})


def validate_model_patterns(value: str) -> None:
    """One pattern a line: `provider/*`, `provider/model` or `pool/model`."""
    from providers.access import parse_patterns

    try:
        parse_patterns(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


class ModelAccess(models.Model):
    """The models a Django group's members may use. A user in no group with a row keeps every model;
    a user in several such groups may use what any of them allows."""

    group = models.OneToOneField("auth.Group", on_delete=models.CASCADE, related_name="model_access")
    patterns = models.TextField(
        validators=[validate_model_patterns],
        help_text="One a line: provider/* (every model of a host or pool), provider/model or pool/model.",
    )

    class Meta:
        ordering = ["group__name"]
        verbose_name = "model access"
        verbose_name_plural = "model access by group"

    def __str__(self) -> str:
        return f"Models of {self.group}"
