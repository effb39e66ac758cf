"""The chat's prompt-and-parameters panel, and the presets it saves."""

from __future__ import annotations

from typing import Any

from django import forms

from boochat.models import ChatSession, Preset
from providers.capabilities import Reasoning

THINKING = [("", "host default"), ("on", "on"), ("off", "off")]
SYSTEM_PROMPT_MAX_CHARS = 20_000


class ChatSettingsForm(forms.Form):
    """A chat's system prompt and the sampling parameters sent with each of its turns. A field left
    empty is not sent: the host's own default applies. Reasoning effort and thinking are offered only
    where the chat's model takes them (providers.capabilities)."""

    system_prompt = forms.CharField(required=False, max_length=SYSTEM_PROMPT_MAX_CHARS, widget=forms.Textarea(attrs={"rows": 3}))
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

    @classmethod
    def for_first_message(cls, session: ChatSession, reasoning: Reasoning, data: Any = None) -> ChatSettingsForm:
        """The panel of a chat not saved yet: its fields belong to the composer's form (their `form`
        attribute), so they go with the first message, which saves the chat."""
        form = cls.for_session(session, reasoning, data)
        for field in form.fields.values():
            field.widget.attrs["form"] = "composer"
        return form

    @property
    def parameters(self) -> dict[str, Any]:
        """The parameters set, as stored: only those with a value."""
        return {name: self.cleaned_data[name] for name in self.PARAMETERS
                if self.cleaned_data.get(name) not in (None, "")}

    @property
    def problems(self) -> str:
        """The errors in one line, each after its field's name."""
        return "; ".join(f"{self[name].label if name in self.fields else 'preset'}: {' '.join(str(e) for e in errors)}"
                         for name, errors in self.errors.items())

    def apply(self, session: ChatSession) -> None:
        """Give the chat the prompt and parameters (not saved)."""
        session.system_prompt = self.cleaned_data["system_prompt"].strip()
        session.parameters = self.parameters

    def save(self, session: ChatSession) -> None:
        self.apply(session)
        session.save(update_fields=["system_prompt", "parameters", "updated_at"])

    def save_preset(self, session: ChatSession, *, name: str = "", for_model: str = "") -> Preset:
        """Keep the prompt and parameters as a named preset, or as the defaults of the chat's model."""
        preset, _ = Preset.objects.update_or_create(
            user=session.user, name=name, for_model=for_model,
            defaults={"system_prompt": self.cleaned_data["system_prompt"].strip(), "parameters": self.parameters})
        return preset
