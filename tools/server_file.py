"""The provider file's `tool_servers` list, read as strictly as its providers, and synced to the registry.

    {"version": 1, "providers": [...],
     "tool_servers": [{"slug": "search", "name": "Web search", "url": "http://127.0.0.1:8808/mcp",
                       "transport": "streamable_http", "api_key_env": "SEARCH_MCP_TOKEN",
                       "approval": "ask", "groups": ["lab"], "headers": {"X-Team": "lab"}, "enabled": true}]}

`transport` is "streamable_http" (default) or "sse"; `approval` "ask" (default) or "never"; no
`groups`: every user. The file's rows are read-only in admin; a row the file no longer lists is
disabled, never deleted. A bad entry fails with the path, the entry and the field, and nothing is
written before the whole list has been read.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction

from providers.models import validate_base_url, validate_env_var_name
from providers.provider_file import EntryReader, ProviderFileError, check_keys, read_provider_file
from tools.models import Approval, ToolServer, Transport, validate_headers, validate_tool_server_slug

logger = logging.getLogger(__name__)

_ENTRY_KEYS = {"slug", "name", "url", "transport", "api_key_env", "approval", "groups", "headers", "enabled", "comment"}


@dataclass(frozen=True)
class ToolServerSpec:
    slug: str
    name: str
    url: str
    transport: str = Transport.STREAMABLE_HTTP
    api_key_env: str = ""
    approval: str = Approval.ASK
    groups: tuple[str, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)
    enabled: bool = True

    def row_fields(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "transport": self.transport, "api_key_env": self.api_key_env,
                "approval": self.approval, "headers": self.headers, "enabled": self.enabled}


def _choice(reader: EntryReader, name: str, choices: list[str], default: str) -> str:
    value = reader.data.get(name, default)
    if value not in choices:
        raise reader.fail(name, f"must be one of {', '.join(json.dumps(c) for c in choices)}, not {json.dumps(value)}")
    return value


def _read_entry(path: Path, index: int, data: Any) -> ToolServerSpec:
    entry = f"tool_servers[{index}]"
    if not isinstance(data, dict):
        raise ProviderFileError(path, "must be an object", entry=entry)
    if isinstance(data.get("slug"), str):
        entry = f"{entry} ({data['slug']!r})"
    reader = EntryReader(path, entry, data)
    check_keys(reader, data, _ENTRY_KEYS)
    slug = reader.text("slug", required=True)
    reader.check("slug", validate_tool_server_slug, slug)
    url = reader.text("url", required=True)
    reader.check("url", validate_base_url, url)
    api_key_env = reader.text("api_key_env")
    if api_key_env:
        reader.check("api_key_env", validate_env_var_name, api_key_env)
    groups = data.get("groups", [])
    if not isinstance(groups, list) or not all(isinstance(g, str) and g.strip() for g in groups):
        raise reader.fail("groups", f'must be a list of group names like ["lab"], not {json.dumps(groups)}')
    headers = data.get("headers", {})
    reader.check("headers", validate_headers, headers)
    return ToolServerSpec(
        slug=slug,
        name=reader.text("name") or slug,
        url=url,
        transport=_choice(reader, "transport", Transport.values, Transport.STREAMABLE_HTTP),
        api_key_env=api_key_env,
        approval=_choice(reader, "approval", Approval.values, Approval.ASK),
        groups=tuple(dict.fromkeys(g.strip() for g in groups)),
        headers=headers,
        enabled=reader.flag("enabled", True),
    )


def parse_tool_servers(path: str | Path, text: str) -> list[ToolServerSpec]:
    """The file's tool servers (none when it has no `tool_servers`); ProviderFileError at the first problem."""
    path = Path(path)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProviderFileError(path, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    entries = document.get("tool_servers", []) if isinstance(document, dict) else []
    if not isinstance(entries, list):
        raise ProviderFileError(path, "must be a list of tool servers", field="tool_servers")
    specs: list[ToolServerSpec] = []
    seen: dict[str, int] = {}
    for index, data in enumerate(entries):
        spec = _read_entry(path, index, data)
        if spec.slug in seen:
            raise ProviderFileError(path, f"duplicate slug; tool_servers[{seen[spec.slug]}] uses it already",
                                    entry=f"tool_servers[{index}] ({spec.slug!r})", field="slug")
        seen[spec.slug] = index
        specs.append(spec)
    return specs


def load_tool_servers(path: str | Path) -> list[ToolServerSpec]:
    return parse_tool_servers(path, read_provider_file(path))


# -- sync ---------------------------------------------------------------------------------------------


@dataclass
class ToolServerPlan:
    origin: str
    specs: list[ToolServerSpec]
    lines: list[str]  # "+ create x", "~ update x: …", "- disable x"

    @property
    def has_changes(self) -> bool:
        return any(not line.startswith("=") for line in self.lines)

    def describe(self) -> str:
        return "\n".join([f"Tool servers from {self.origin}:", *(f"  {line}" for line in self.lines)]
                         + ([] if self.has_changes else ["  (no changes)"]))


def plan_tool_servers(specs: list[ToolServerSpec], *, origin: str) -> ToolServerPlan:
    """What syncing `specs` would change: rows created, updated (or taken over from admin), disabled."""
    rows = {row.slug: row for row in ToolServer.objects.prefetch_related("groups")}
    lines = []
    for spec in specs:
        row = rows.get(spec.slug)
        if row is None:
            lines.append(f"+ create {spec.slug}: {spec.transport} at {spec.url}")
            continue
        details = [f"{name}: {getattr(row, name)!r} -> {wanted!r}" for name, wanted in spec.row_fields().items()
                   if getattr(row, name) != wanted]
        groups = tuple(sorted(g.name for g in row.groups.all()))
        if groups != tuple(sorted(spec.groups)):
            details.append(f"groups: {list(groups)} -> {sorted(spec.groups)}")
        if not row.from_file:
            details.append("now from the provider file")
        lines.append(f"~ update {spec.slug}: {'; '.join(details)}" if details else f"= keep {spec.slug}")
    wanted = {spec.slug for spec in specs}
    lines += [f"- disable {slug}: no longer in {origin}" for slug, row in sorted(rows.items())
              if row.from_file and row.enabled and slug not in wanted]
    return ToolServerPlan(origin, specs, lines)


@transaction.atomic
def apply_tool_servers(plan: ToolServerPlan) -> None:
    """Write `plan` in one transaction; groups the file names are created when missing."""
    ToolServer.objects.filter(from_file=True).exclude(slug__in=[s.slug for s in plan.specs]).update(enabled=False)
    for spec in plan.specs:
        server, _ = ToolServer.objects.update_or_create(slug=spec.slug, defaults={
            **spec.row_fields(), "from_file": True, "bearer_secret": ""})  # the file's secrets live in the environment
        server.groups.set([Group.objects.get_or_create(name=name)[0] for name in spec.groups])


def plan_from_environment() -> ToolServerPlan | None:
    """The plan for LLAMA_PROVIDERS_PATH's tool servers, or None without a file."""
    path = settings.LLAMA_PROVIDERS_PATH
    if not path or not Path(path).exists():
        return None
    return plan_tool_servers(load_tool_servers(path), origin=path)


def sync_from_environment() -> ToolServerPlan | None:
    """Apply the provider file's tool servers (start-up, HUP and `sync_tool_servers`)."""
    plan = plan_from_environment()
    if plan is not None and plan.has_changes:
        apply_tool_servers(plan)
        logger.info("%s", plan.describe())
    return plan

