"""Composite model ids: `provider/model`, split on the first `/`.

This module is pure (no database): it parses and formats ids. Filling in the default provider for
bare and legacy ids, and rejecting unknown providers, is `providers.routing`'s job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The prefix single-host installs wrote before providers existed; it always means the default provider.
LEGACY_NAMESPACE = "llama-swap"

SLUG_PATTERN = r"[a-z0-9][a-z0-9._-]*"
SLUG_MAX_LENGTH = 64
MODEL_MAX_LENGTH = 255

_SLUG_RE = re.compile(SLUG_PATTERN)
# Model ids are llama-swap config keys or API model names. Whitespace, control characters and URL
# syntax (`?`, `#`, `%`, `\`) never occur in them, and refusing them keeps ids out of URL tricks.
_MODEL_FORBIDDEN_RE = re.compile(r"[\x00-\x20\x7f?#%\\]")


class InvalidModelId(ValueError):
    """A string that is not a well-formed model id; the message names the problem."""


def is_valid_slug(value: str) -> bool:
    return len(value) <= SLUG_MAX_LENGTH and _SLUG_RE.fullmatch(value) is not None


def validate_model_name(value: str) -> None:
    """Raise InvalidModelId unless `value` is a usable model part (the wire id)."""
    if not value:
        raise InvalidModelId("the model name is empty")
    if len(value) > MODEL_MAX_LENGTH:
        raise InvalidModelId(f"the model name is longer than {MODEL_MAX_LENGTH} characters")
    if bad := _MODEL_FORBIDDEN_RE.search(value):
        raise InvalidModelId(f"the model name contains the character {bad.group()!r}")
    for segment in value.split("/"):
        if segment in ("", ".", ".."):
            raise InvalidModelId(f"the model name has an empty, '.' or '..' segment: {value!r}")


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A model on one provider. `str(ref)` is the composite id used everywhere but on the wire."""

    provider: str
    model: str

    def __post_init__(self) -> None:
        if not is_valid_slug(self.provider):
            raise InvalidModelId(
                f"{self.provider!r} is not a provider slug (lowercase letters, digits, '.', '_', '-')"
            )
        validate_model_name(self.model)

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}"

    @classmethod
    def parse(cls, value: str, *, default_provider: str | None = None) -> ModelRef:
        """Parse `provider/model`; bare and `llama-swap/` ids need `default_provider`."""
        if not isinstance(value, str):
            raise InvalidModelId(f"a model id must be a string, not {type(value).__name__}")
        if not value:
            raise InvalidModelId("the model id is empty")
        provider, slash, model = value.partition("/")
        if needs_default_provider(value):
            if default_provider is None:
                raise InvalidModelId(f"{value!r} has no provider prefix and there is no default provider")
            return cls(default_provider, model if slash else value)
        if not is_valid_slug(provider):
            raise InvalidModelId(
                f"{value!r}: {provider!r} is not a provider slug (lowercase letters, digits, '.', '_', '-')"
            )
        return cls(provider, model)

    @property
    def display_name(self) -> str:
        """The name inside its provider's group: only the provider prefix is stripped."""
        return self.model

    @property
    def label(self) -> str:
        """The name outside its group (Favorites): `qwen3-8b · sam-desktop`."""
        return f"{self.model} · {self.provider}"


def needs_default_provider(value: str) -> bool:
    """True for ids that name no provider: bare ids and the legacy `llama-swap/` namespace."""
    provider, slash, _ = value.partition("/")
    return not slash or provider == LEGACY_NAMESPACE
