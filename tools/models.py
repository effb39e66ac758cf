"""The tool server registry: MCP servers BooChat calls for the models' tool calls."""

from __future__ import annotations

import os
import re
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from providers.models import validate_base_url, validate_env_var_name

SLUG_MAX_LENGTH = 30
# No "__" inside a slug: a tool's function name is "<slug>__<tool>", split at its first "__".
SLUG_RE = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*")
HEADER_NAME_RE = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
BUILTIN_SLUGS = {"web"}  # the built-in web search's


def validate_tool_server_slug(value: str) -> None:
    if not SLUG_RE.fullmatch(value) or len(value) > SLUG_MAX_LENGTH:
        raise ValidationError(
            f"{value!r} is not a tool server slug: lowercase letters and digits, single '-' or '_' between "
            f"them, at most {SLUG_MAX_LENGTH} characters."
        )
    if value in BUILTIN_SLUGS:
        raise ValidationError(f"{value!r} is the built-in web search's slug.")


def validate_headers(value: Any) -> None:
    """An object of header names to text values."""
    if not isinstance(value, dict):
        raise ValidationError('Headers must be an object like {"X-Team": "lab"}.')
    for name, text in value.items():
        if not HEADER_NAME_RE.fullmatch(name):
            raise ValidationError(f"{name!r} is not a header name.")
        if not isinstance(text, str) or "\n" in text or "\r" in text:
            raise ValidationError(f"Header {name!r}: the value must be text on one line.")


class Transport(models.TextChoices):
    STREAMABLE_HTTP = "streamable_http", "Streamable HTTP"
    SSE = "sse", "HTTP+SSE (older servers)"


class Approval(models.TextChoices):
    ASK = "ask", "ask the user before each call"
    NEVER = "never", "run calls without asking"


class ToolServerQuerySet(models.QuerySet["ToolServer"]):
    def enabled(self) -> ToolServerQuerySet:
        return self.filter(enabled=True)

    def for_user(self, user: AbstractBaseUser | AnonymousUser) -> ToolServerQuerySet:
        """The enabled servers `user` may use: those with no groups, and those given to a group of theirs."""
        everyone = Q(groups=None)
        if not user.is_authenticated:
            return self.enabled().filter(everyone)
        mine = Group.objects.filter(user__pk=user.pk)
        allowed = self.filter(everyone | Q(groups__in=mine)).values("pk")
        return self.enabled().filter(pk__in=allowed)


class ToolServer(models.Model):
    slug = models.CharField(
        max_length=SLUG_MAX_LENGTH, unique=True, validators=[validate_tool_server_slug],
        help_text="Names its tools for the models (<slug>__<tool>). Cannot be changed later.",
    )
    name = models.CharField(max_length=100)
    url = models.CharField(
        "URL", max_length=500, validators=[validate_base_url],
        help_text="The MCP endpoint: http://host:8808/mcp (streamable HTTP) or http://host:8808/sse (HTTP+SSE).",
    )
    transport = models.CharField(max_length=20, choices=Transport.choices, default=Transport.STREAMABLE_HTTP)
    headers = models.JSONField(
        default=dict, blank=True, validators=[validate_headers],
        help_text='Sent with every request, shown here: {"X-Team": "lab"}. Put secrets in the bearer secret.',
    )
    # Write-only in admin: a new value replaces it, nothing shows it back.
    bearer_secret = models.CharField(max_length=1000, blank=True, editable=False)
    api_key_env = models.CharField(
        "bearer secret variable", max_length=100, blank=True, validators=[validate_env_var_name],
        help_text="Or the name of an environment variable holding the bearer secret (it wins over the stored one).",
    )
    approval = models.CharField(
        max_length=10, choices=Approval.choices, default=Approval.ASK,
        help_text="Whether each call waits for the user's Run in the chat.",
    )
    enabled = models.BooleanField(default=True)
    groups = models.ManyToManyField(
        Group, blank=True, related_name="tool_servers",
        help_text="Only members of these groups may use it. None: every user.",
    )
    from_file = models.BooleanField(
        default=False, editable=False,
        help_text="Rows from the provider file's tool_servers are edited in the file.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ToolServerQuerySet.as_manager()

    class Meta:
        ordering = ["name", "slug"]

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"

    def request_headers(self) -> dict[str, str]:
        """The headers each request to the server carries, with the bearer secret if there is one."""
        headers = dict(self.headers)
        secret = (os.environ.get(self.api_key_env, "") if self.api_key_env else "") or self.bearer_secret
        if secret:
            headers["Authorization"] = f"Bearer {secret}"
        return headers

    def unusable_because(self) -> str:
        """Why no request can be made now ("" when one can): a secret variable named but not set."""
        if self.api_key_env and not os.environ.get(self.api_key_env) and not self.bearer_secret:
            return f"its bearer secret variable {self.api_key_env} is not set"
        return ""
