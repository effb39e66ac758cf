"""The chat's prompt-and-parameters panel, and the presets it saves."""

from __future__ import annotations

from typing import Any

from django import forms

from boochat.models import ChatSession, Preset
from providers.capabilities import Reasoning

THINKING = [("", "host default"), ("on", "on"), ("off", "off")]


class ChatSettingsForm(forms.Form):
    """A chat's system prompt and the sampling parameters sent with each of its turns. A field left
    empty is not sent: the host's own default applies. Reasoning effort and thinking are offered only
    where the chat's model takes them (providers.capabilities)."""

    system_prompt = forms.CharField(required=False, max_length=20_000, widget=forms.Textarea(attrs={"rows": 3}))
    temperature = forms.FloatField(required=False, min_value=0, max_value=2)
    top_p = forms.FloatField(required=False, min_value=0, max_value=1, label="Top p")
    max_tokens = forms.IntegerField(required=False, min_value=1, max_value=1_000_000, label="Max tokens")
    reasoning_effort = forms.ChoiceField(required=False, label="Reasoning effort")
    thinking = forms.ChoiceField(required=False, choices=THINKING, label="Thinking")

    PARAMETERS = ("temperature", "top_p", "max_tokens", "reasoning_effort", "thinking")

    def __init__(self, *args: Any, reasoning: Reasoning, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        reasoning_effort = self.fields["reasoning_effort"]
        assert isinstance(reasoning_effort, forms.ChoiceField)
        reasoning_effort.choices = [("", "host default"), *((e, e) for e in reasoning.efforts)]
        if not reasoning.efforts:
            del self.fields["reasoning_effort"]
        if not reasoning.thinking:
            del self.fields["thinking"]

    @classmethod
    def for_session(cls, session: ChatSession, reasoning: Reasoning, data: Any = None) -> ChatSettingsForm:
        return cls(data, reasoning=reasoning, initial={"system_prompt": session.system_prompt, **session.parameters})

    @property
    def parameters(self) -> dict[str, Any]:
        """The parameters set, as stored: only those with a value."""
        return {name: self.cleaned_data[name] for name in self.PARAMETERS
                if self.cleaned_data.get(name) not in (None, "")}

    def save(self, session: ChatSession) -> None:
        session.system_prompt = self.cleaned_data["system_prompt"].strip()
        session.parameters = self.parameters
        session.save(update_fields=["system_prompt", "parameters", "updated_at"])

    def save_preset(self, session: ChatSession, *, name: str = "", for_model: str = "") -> Preset:
        """Keep the prompt, parameters and tools as a named preset, or as the defaults of the chat's model."""
        preset, _ = Preset.objects.update_or_create(
            user=session.user, name=name, for_model=for_model,
            defaults={"system_prompt": self.cleaned_data["system_prompt"].strip(), "parameters": self.parameters,
                      "tools": session.tools})
        return preset
