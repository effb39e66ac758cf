"""The `llama-providers.json` format: parse it strictly, and write it back (export).

Format (README, "Provider file"):

    {"version": 1, "providers": [{"slug": "sam-desktop", "name": "...", "kind": "llama_swap",
      "base_url": "http://...", "sidecar_url": null, "api_key_env": null, "enabled": true,
      "default": true, "timeouts": {"connect": 3, "read": 600, "models": 2},
      "models": {"qwen3-30b": {"display_name": "...", "context_size": 32768, "hidden": false,
                               "purpose": "chat", "accepts_images": true, "default_for_new_chats": true}}}]}

A model's options are those of a model override in admin: display_name, context_size, hidden,
purpose ("chat" or "embedding"), accepts_images and calls_tools (true, false, or left out: as the host says),
default_for_new_chats (one model of the whole file at most), and members (a pool's models only).

Every error names the file, the entry and the field, and nothing is written before the whole file
has been read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError

from providers.ids import LEGACY_NAMESPACE
from providers.models import (
    PoolStrategy,
    Provider,
    ProviderKind,
    check_members,
    validate_base_url,
    validate_env_var_name,
    validate_model_part,
    validate_slug,
)

FORMAT_VERSION = 1
DEFAULT_TIMEOUTS = {"connect": 3.0, "read": 600.0, "models": 2.0}
# tool_servers: the tool servers (MCP) beside the providers, read by tools/server_file.py.
_TOP_KEYS = {"version", "providers", "tool_servers", "$schema", "comment"}
_ENTRY_KEYS = {
    "slug", "name", "kind", "base_url", "sidecar_url", "api_key_env",
    "enabled", "default", "timeouts", "models", "comment", "strategy",
}
_OVERRIDE_KEYS = {"display_name", "context_size", "hidden", "purpose", "members", "accepts_images", "default_for_new_chats", "slots", "calls_tools"}


class ProviderFileError(Exception):
    """A provider file that cannot be used; the message names the path, the entry and the field."""

    def __init__(self, path: str | Path, reason: str, *, entry: str | None = None, field: str | None = None):
        self.path = str(path)
        self.entry = entry
        self.field = field
        self.reason = reason
        where = ": ".join(part for part in (entry, f"field {field!r}" if field else None) if part)
        super().__init__(f"{self.path}: {where + ': ' if where else ''}{reason}")


@dataclass(frozen=True)
class OverrideSpec:
    display_name: str = ""
    context_size: int | None = None
    hidden: bool = False
    purpose: str = ""  # "", "chat" or "embedding" (ModelPurpose)
    members: tuple[str, ...] = ()  # a pool's model: the composite ids that serve it, in order
    accepts_images: bool | None = None  # None: as the host says (or its kind)
    new_chats: bool = False  # the default model of new chats
    slots: int | None = None  # requests the host serves at once, when its /props should not say
    calls_tools: bool | None = None  # None: as the host says (or its kind)


@dataclass(frozen=True)
class ProviderSpec:
    """One provider as a source (file or legacy env vars) wants it."""

    slug: str
    name: str
    kind: str
    base_url: str
    sidecar_url: str = ""
    api_key_env: str = ""
    enabled: bool = True
    is_default: bool = False
    connect_timeout: float = DEFAULT_TIMEOUTS["connect"]
    read_timeout: float = DEFAULT_TIMEOUTS["read"]
    models_timeout: float = DEFAULT_TIMEOUTS["models"]
    overrides: dict[str, OverrideSpec] = field(default_factory=dict)
    strategy: str = PoolStrategy.CACHE  # a pool's: how a request picks a member

    def row_fields(self) -> dict[str, Any]:
        """The Provider model fields this spec sets."""
        return {
            "name": self.name,
            "kind": self.kind,
            "base_url": self.base_url,
            "sidecar_url": self.sidecar_url,
            "api_key_env": self.api_key_env,
            "enabled": self.enabled,
            "connect_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
            "models_timeout": self.models_timeout,
            "strategy": self.strategy,
        }


class EntryReader:
    """Reads one entry's fields, raising ProviderFileError that names the entry and the field."""

    def __init__(self, path: Path, entry: str, data: dict[str, Any]):
        self.path, self.entry, self.data = path, entry, data

    def fail(self, field_name: str | None, reason: str) -> ProviderFileError:
        return ProviderFileError(self.path, reason, entry=self.entry, field=field_name)

    def check(self, field_name: str, validator: Any, value: Any) -> None:
        try:
            validator(value)
        except ValidationError as exc:
            raise self.fail(field_name, " ".join(exc.messages)) from None

    def text(self, name: str, *, required: bool = False, default: str = "") -> str:
        value = self.data.get(name)
        if value is None:
            if required:
                raise self.fail(name, "is required")
            return default
        if not isinstance(value, str):
            raise self.fail(name, f"must be a string, not {json.dumps(value)}")
        value = value.strip()
        if required and not value:
            raise self.fail(name, "must not be empty")
        return value

    def flag(self, name: str, default: bool) -> bool:
        value = self.data.get(name, default)
        if not isinstance(value, bool):
            raise self.fail(name, f"must be true or false, not {json.dumps(value)}")
        return value


def check_keys(reader: EntryReader, data: dict[str, Any], allowed: set[str], field_prefix: str = "") -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise reader.fail(
            field_prefix + unknown[0],
            f"unknown field; expected one of {', '.join(sorted(allowed - {'comment'}))}",
        )


def _positive_number(reader: EntryReader, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise reader.fail(name, f"must be a positive number of seconds, not {json.dumps(value)}")
    return float(value)


def _read_timeouts(reader: EntryReader) -> dict[str, float]:
    raw = reader.data.get("timeouts", {})
    if not isinstance(raw, dict):
        raise reader.fail("timeouts", 'must be an object like {"connect": 3, "read": 600, "models": 2}')
    check_keys(reader, raw, set(DEFAULT_TIMEOUTS), "timeouts.")
    return {
        key: _positive_number(reader, f"timeouts.{key}", raw[key]) if key in raw else default
        for key, default in DEFAULT_TIMEOUTS.items()
    }


def _read_overrides(reader: EntryReader) -> dict[str, OverrideSpec]:
    raw = reader.data.get("models", {})
    if not isinstance(raw, dict):
        raise reader.fail("models", 'must be an object keyed by model id, like {"qwen3-8b": {"hidden": true}}')
    overrides = {}
    for model, options in raw.items():
        name = f"models.{model}"
        reader.check(name, validate_model_part, model)
        if not isinstance(options, dict):
            raise reader.fail(name, "must be an object with any of " + ", ".join(sorted(_OVERRIDE_KEYS - {"comment"})))
        check_keys(reader, options, _OVERRIDE_KEYS, name + ".")
        display_name = options.get("display_name") or ""
        if not isinstance(display_name, str):
            raise reader.fail(f"{name}.display_name", "must be a string")
        context_size = options.get("context_size")
        if context_size is not None and (
            isinstance(context_size, bool) or not isinstance(context_size, int) or context_size <= 0
        ):
            raise reader.fail(f"{name}.context_size", f"must be a positive whole number of tokens, not {json.dumps(context_size)}")
        hidden = options.get("hidden", False)
        if not isinstance(hidden, bool):
            raise reader.fail(f"{name}.hidden", "must be true or false")
        purpose = options.get("purpose", "")
        if purpose not in ("chat", "embedding"):
            if "purpose" in options:
                raise reader.fail(f"{name}.purpose", f'must be "chat" or "embedding", not {json.dumps(purpose)}')
            purpose = ""
        members = options.get("members", [])
        if reader.data.get("kind") == ProviderKind.POOL:
            if not isinstance(members, list) or not members:
                raise reader.fail(f"{name}.members", 'a pool\'s model must list its members, like ["sam-desktop/qwen3-8b"]')
        elif "members" in options:
            raise reader.fail(f"{name}.members", "only a pool's models have members")
        slots = options.get("slots")
        if slots is not None and (isinstance(slots, bool) or not isinstance(slots, int) or slots <= 0):
            raise reader.fail(f"{name}.slots", f"must be a positive whole number of requests, not {json.dumps(slots)}")
        accepts_images = options.get("accepts_images")
        if accepts_images is not None and not isinstance(accepts_images, bool):
            raise reader.fail(f"{name}.accepts_images", f"must be true, false or null (as the host says), not {json.dumps(accepts_images)}")
        calls_tools = options.get("calls_tools")
        if calls_tools is not None and not isinstance(calls_tools, bool):
            raise reader.fail(f"{name}.calls_tools", f"must be true, false or null (as the host says), not {json.dumps(calls_tools)}")
        new_chats = options.get("default_for_new_chats", False)
        if not isinstance(new_chats, bool):
            raise reader.fail(f"{name}.default_for_new_chats", "must be true or false")
        overrides[model] = OverrideSpec(display_name.strip(), context_size, hidden, purpose, tuple(members),
                                        accepts_images, new_chats, slots, calls_tools)
    return overrides


def _read_entry(path: Path, index: int, data: Any) -> ProviderSpec:
    entry = f"providers[{index}]"
    if not isinstance(data, dict):
        raise ProviderFileError(path, "must be an object", entry=entry)
    slug = data.get("slug")
    if isinstance(slug, str):
        entry = f"{entry} ({slug!r})"
    reader = EntryReader(path, entry, data)
    check_keys(reader, data, _ENTRY_KEYS)

    slug = reader.text("slug", required=True)
    reader.check("slug", validate_slug, slug)
    if slug == LEGACY_NAMESPACE:
        raise reader.fail("slug", f"{LEGACY_NAMESPACE!r} is reserved: ids with that prefix always mean the default provider")
    kind = reader.text("kind", required=True)
    if kind not in ProviderKind.values:
        raise reader.fail("kind", f"unknown kind {kind!r}; expected one of {', '.join(ProviderKind.values)}")
    if kind == ProviderKind.POOL:
        for name in ("base_url", "sidecar_url", "api_key_env"):
            if data.get(name):
                raise reader.fail(name, "a pool has no address or key: its members' providers have them")
    base_url = reader.text("base_url", required=kind != ProviderKind.POOL).rstrip("/")
    if base_url:
        reader.check("base_url", validate_base_url, base_url)
    sidecar_url = reader.text("sidecar_url").rstrip("/")
    if sidecar_url:
        reader.check("sidecar_url", validate_base_url, sidecar_url)
    api_key_env = reader.text("api_key_env")
    if api_key_env:
        reader.check("api_key_env", validate_env_var_name, api_key_env)
    enabled = reader.flag("enabled", True)
    is_default = reader.flag("default", False)
    if is_default and not enabled:
        raise reader.fail("default", "the default provider must be enabled")
    timeouts = _read_timeouts(reader)
    strategy = data.get("strategy", PoolStrategy.CACHE)
    if "strategy" in data and kind != ProviderKind.POOL:
        raise reader.fail("strategy", "only a pool has a strategy")
    if strategy not in PoolStrategy.values:
        raise reader.fail("strategy", f"unknown strategy {json.dumps(strategy)}; expected one of "
                                      f"{', '.join(PoolStrategy.values)}")
    return ProviderSpec(
        slug=slug,
        name=reader.text("name") or slug,
        kind=kind,
        base_url=base_url,
        sidecar_url=sidecar_url,
        api_key_env=api_key_env,
        enabled=enabled,
        is_default=is_default,
        connect_timeout=timeouts["connect"],
        read_timeout=timeouts["read"],
        models_timeout=timeouts["models"],
        overrides=_read_overrides(reader),
        strategy=strategy,
    )


def parse_provider_file(path: str | Path, text: str) -> list[ProviderSpec]:
    """Parse and validate the whole file; raise ProviderFileError at the first problem."""
    path = Path(path)
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProviderFileError(path, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    if not isinstance(document, dict):
        raise ProviderFileError(path, 'the file must hold a JSON object like {"version": 1, "providers": [...]}')
    unknown = sorted(set(document) - _TOP_KEYS)
    if unknown:
        raise ProviderFileError(path, f"unknown top-level field {unknown[0]!r}; expected version, providers and tool_servers")
    version = document.get("version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise ProviderFileError(path, f"unsupported version {json.dumps(version)}; this BooChat reads version {FORMAT_VERSION}", field="version")
    entries = document.get("providers")
    if not isinstance(entries, list) or not entries:
        raise ProviderFileError(path, "must be a non-empty list of providers", field="providers")

    specs: list[ProviderSpec] = []
    seen: dict[str, int] = {}
    default_index: int | None = None
    for index, data in enumerate(entries):
        spec = _read_entry(path, index, data)
        entry = f"providers[{index}] ({spec.slug!r})"
        if spec.slug in seen:
            raise ProviderFileError(path, f"duplicate slug; providers[{seen[spec.slug]}] uses it already", entry=entry, field="slug")
        seen[spec.slug] = index
        if spec.is_default:
            if default_index is not None:
                raise ProviderFileError(
                    path, f"two defaults; providers[{default_index}] is the default already", entry=entry, field="default"
                )
            default_index = index
        specs.append(spec)
    marked = [(index, spec.slug, model) for index, spec in enumerate(specs) for model, o in spec.overrides.items() if o.new_chats]
    if len(marked) > 1:
        (_, first_slug, first_model), (index, slug, model) = marked[:2]
        raise ProviderFileError(path, f"a second default for new chats; {first_slug}/{first_model} is already",
                                entry=f"providers[{index}] ({slug!r})", field=f"models.{model}.default_for_new_chats")
    kinds = {spec.slug: spec.kind for spec in specs}
    for index, spec in enumerate(specs):  # pools name members among the file's providers
        for model, override in spec.overrides.items():
            if spec.kind == ProviderKind.POOL:
                try:
                    check_members(list(override.members), kinds)
                except ValidationError as exc:
                    raise ProviderFileError(path, " ".join(exc.messages), entry=f"providers[{index}] ({spec.slug!r})",
                                            field=f"models.{model}.members") from None
    return specs


def read_provider_file(path: str | Path) -> str:
    """The provider file's text; ProviderFileError when it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProviderFileError(path, f"cannot be read: {exc}") from None


def load_provider_file(path: str | Path) -> list[ProviderSpec]:
    """Read and parse the provider file at `path`."""
    return parse_provider_file(path, read_provider_file(path))


def provider_to_entry(provider: Provider) -> dict[str, Any]:
    """One registry row in the file format (export_providers)."""
    entry: dict[str, Any] = {
        "slug": provider.slug,
        "name": provider.name,
        "kind": provider.kind,
        "base_url": provider.base_url or None,
        "sidecar_url": provider.sidecar_url or None,
        "api_key_env": provider.api_key_env or None,
        "enabled": provider.enabled,
        "default": provider.is_default,
        "timeouts": {
            "connect": provider.connect_timeout,
            "read": provider.read_timeout,
            "models": provider.models_timeout,
        },
    }
    if provider.kind == ProviderKind.POOL:
        entry["strategy"] = provider.strategy
    overrides = {}
    for override in provider.overrides.all():
        options: dict[str, Any] = {}
        if override.display_name:
            options["display_name"] = override.display_name
        if override.context_size is not None:
            options["context_size"] = override.context_size
        if override.hidden:
            options["hidden"] = True
        if override.purpose:
            options["purpose"] = override.purpose
        if override.members:
            options["members"] = override.members
        if override.slots is not None:
            options["slots"] = override.slots
        if override.accepts_images is not None:
            options["accepts_images"] = override.accepts_images
        if override.calls_tools is not None:
            options["calls_tools"] = override.calls_tools
        if override.new_chats:
            options["default_for_new_chats"] = True
        overrides[override.model] = options
    if overrides:
        entry["models"] = overrides
    return entry


def export_document(providers: list[Provider]) -> str:
    """The whole file for `providers`, as JSON text ending in a newline."""
    document = {"version": FORMAT_VERSION, "providers": [provider_to_entry(p) for p in providers]}
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
