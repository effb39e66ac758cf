"""Bring the registry in line with its configured source: the provider file, or the legacy env vars.

`plan_*` computes what would change (the `--dry-run` diff); `apply_plan` writes it in one
transaction. A bad file raises before anything is planned, so it never changes a row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import transaction

from providers.models import (
    ModelOverride,
    Provider,
    ProviderKind,
    ProviderSource,
    validate_base_url,
)
from providers.provider_file import OverrideSpec, ProviderFileError, ProviderSpec, load_provider_file

logger = logging.getLogger(__name__)

LEGACY_SLUG = "local"


@dataclass
class Change:
    action: str  # "create", "update", "disable" or "keep"
    slug: str
    details: list[str] = field(default_factory=list)
    spec: ProviderSpec | None = None

    def __str__(self) -> str:
        symbol = {"create": "+", "update": "~", "disable": "-", "keep": "="}[self.action]
        text = f"{symbol} {self.action} {self.slug}"
        return text + (": " + "; ".join(self.details) if self.details else "")


@dataclass
class SyncPlan:
    source: str
    origin: str  # the file path, or the env var names
    changes: list[Change]

    @property
    def has_changes(self) -> bool:
        return any(change.action != "keep" for change in self.changes)

    def describe(self) -> str:
        lines = [f"Providers from {self.origin}:"]
        lines += [f"  {change}" for change in self.changes]
        if not self.has_changes:
            lines.append("  (no changes)")
        return "\n".join(lines)


def _override_map(provider: Provider) -> dict[str, OverrideSpec]:
    return {
        o.model: OverrideSpec(o.display_name, o.context_size, o.hidden, o.purpose, tuple(o.members), o.accepts_images,
                              o.new_chats, o.slots, o.calls_tools)
        for o in provider.overrides.all()
    }


def _differences(row: Provider, spec: ProviderSpec, source: str) -> list[str]:
    details = [
        f"{name}: {getattr(row, name)!r} -> {wanted!r}"
        for name, wanted in {**spec.row_fields(), "is_default": spec.is_default}.items()
        if getattr(row, name) != wanted
    ]
    if row.source != source:
        details.append(f"source: {row.source} -> {source}")
    current = _override_map(row)
    for model in sorted(set(current) | set(spec.overrides)):
        if current.get(model) != spec.overrides.get(model):
            details.append(f"model {model}: {current.get(model)} -> {spec.overrides.get(model)}")
    return details


def _with_default(specs: list[ProviderSpec], rows: dict[str, Provider], retired: set[str]) -> list[ProviderSpec]:
    """Exactly one default: the one a spec marks, else the current one if it stays usable, else the first."""
    if any(spec.is_default for spec in specs):
        return specs
    by_slug = {spec.slug: spec for spec in specs}
    current = next((slug for slug, row in rows.items() if row.is_default and slug not in retired), None)
    if current is not None and current not in by_slug:
        return specs  # a default made in admin stays the default
    if current is None or not by_slug[current].enabled:
        current = next((spec.slug for spec in specs if spec.enabled), None)
    return [replace(spec, is_default=spec.slug == current) for spec in specs]


def plan_sync(specs: list[ProviderSpec], *, source: str, origin: str) -> SyncPlan:
    """Compare `specs` with the registry rows; rows of this source missing from `specs` are disabled."""
    rows = {row.slug: row for row in Provider.objects.prefetch_related("overrides")}
    wanted = {spec.slug for spec in specs}
    retired = {
        slug
        for slug, row in rows.items()
        if slug not in wanted
        and (row.source == source or (source == ProviderSource.FILE and row.source == ProviderSource.ENV))
    }
    specs = _with_default(specs, rows, retired)
    changes = []
    for spec in specs:
        row = rows.get(spec.slug)
        if row is None:
            details = [f"{spec.kind} at {spec.base_url}"] + (["default"] if spec.is_default else [])
            changes.append(Change("create", spec.slug, details, spec))
            continue
        details = _differences(row, spec, source)
        changes.append(Change("update" if details else "keep", spec.slug, details, spec))
    for slug in sorted(retired):
        row = rows[slug]
        if row.enabled or row.is_default:
            changes.append(Change("disable", slug, [f"no longer in {origin}"]))
    return SyncPlan(source=source, origin=origin, changes=changes)


@transaction.atomic
def apply_plan(plan: SyncPlan) -> None:
    """Write `plan` in one transaction."""
    new_default = next((c.slug for c in plan.changes if c.spec is not None and c.spec.is_default), None)
    if new_default is not None:
        Provider.objects.filter(is_default=True).exclude(slug=new_default).update(is_default=False)
    for change in plan.changes:
        if change.action == "disable":
            Provider.objects.filter(slug=change.slug).update(enabled=False, is_default=False)
    if any(o.new_chats for c in plan.changes if c.spec is not None for o in c.spec.overrides.values()):
        ModelOverride.objects.filter(new_chats=True).update(new_chats=False)  # the file's mark moves there
    for change in plan.changes:
        if change.action not in ("create", "update") or change.spec is None:
            continue
        spec = change.spec
        provider, _ = Provider.objects.update_or_create(
            slug=spec.slug,
            defaults={**spec.row_fields(), "is_default": spec.is_default, "source": plan.source},
        )
        provider.overrides.exclude(model__in=list(spec.overrides)).delete()
        for model, options in spec.overrides.items():
            ModelOverride.objects.update_or_create(
                provider=provider,
                model=model,
                defaults={
                    "display_name": options.display_name,
                    "context_size": options.context_size,
                    "hidden": options.hidden,
                    "purpose": options.purpose,
                    "members": list(options.members),
                    "accepts_images": options.accepts_images,
                    "new_chats": options.new_chats,
                    "slots": options.slots,
                    "calls_tools": options.calls_tools,
                },
            )


def legacy_env_spec() -> ProviderSpec | None:
    """The single default provider that `LLAMA_SWAP_URL` (+ `LLAMA_SIDECAR_URL`) describe, if set."""
    url = settings.LLAMA_SWAP_URL.rstrip("/")
    if not url:
        return None
    sidecar = settings.LLAMA_SIDECAR_URL.rstrip("/")
    for name, value in (("LLAMA_SWAP_URL", url), ("LLAMA_SIDECAR_URL", sidecar)):
        if value:
            try:
                validate_base_url(value)
            except ValidationError as exc:
                raise ImproperlyConfigured(f"{name}: {' '.join(exc.messages)}") from None
    existing = Provider.objects.filter(slug=LEGACY_SLUG).first()
    return ProviderSpec(
        slug=LEGACY_SLUG,
        name="llama-swap",
        kind=ProviderKind.LLAMA_SWAP,
        base_url=url,
        sidecar_url=sidecar,
        is_default=True,
        # Timeouts and overrides may have been tuned in admin since; the env vars only say where.
        connect_timeout=existing.connect_timeout if existing else 3.0,
        read_timeout=existing.read_timeout if existing else 600.0,
        models_timeout=existing.models_timeout if existing else 2.0,
        overrides=_override_map(existing) if existing else {},
    )


def plan_from_environment() -> SyncPlan | None:
    """The plan for the configured source, or None when nothing is configured to sync."""
    path = settings.LLAMA_PROVIDERS_PATH
    if path and Path(path).exists():
        return plan_sync(load_provider_file(path), source=ProviderSource.FILE, origin=path)
    if path:
        logger.warning("LLAMA_PROVIDERS_PATH=%s does not exist; falling back to LLAMA_SWAP_URL", path)
    spec = legacy_env_spec()
    if spec is None:
        return None
    others = Provider.objects.exclude(source=ProviderSource.ENV)
    if others.exists() and not Provider.objects.filter(slug=LEGACY_SLUG, source=ProviderSource.ENV).exists():
        # The env vars describe a first provider only while the registry is empty.
        return None
    if others.filter(is_default=True).exists():
        spec = replace(spec, is_default=False)
    return plan_sync([spec], source=ProviderSource.ENV, origin="LLAMA_SWAP_URL")


def default_from_file() -> str | None:
    """The slug the provider file makes the default, if it names one. The file then decides the
    default: admin refuses another (each start and HUP would put the file's back)."""
    path = settings.LLAMA_PROVIDERS_PATH
    if not path or not Path(path).exists():
        return None
    try:
        specs = load_provider_file(path)
    except ProviderFileError:  # the sync refuses such a file too, and changes nothing
        return None
    return next((spec.slug for spec in specs if spec.is_default), None)


def sync_from_environment() -> SyncPlan | None:
    """Apply the configured source to the registry (start-up and `sync_providers`)."""
    plan = plan_from_environment()
    if plan is not None and plan.has_changes:
        apply_plan(plan)
        logger.info("%s", plan.describe())
    return plan
