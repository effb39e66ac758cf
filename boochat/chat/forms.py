"""The chat's prompt-and-parameters panel."""

from __future__ import annotations

from typing import Any

from django import forms

from boochat.models import ChatSession

REASONING_EFFORTS = [("", "host default"), ("low", "low"), ("medium", "medium"), ("high", "high")]


class ChatSettingsForm(forms.Form):
    """A chat's system prompt and the sampling parameters sent with each of its turns. A field left
    empty is not sent: the host's own default applies."""

    system_prompt = forms.CharField(required=False, max_length=20_000, widget=forms.Textarea(attrs={"rows": 3}))
    temperature = forms.FloatField(required=False, min_value=0, max_value=2)
    top_p = forms.FloatField(required=False, min_value=0, max_value=1, label="Top p")
    max_tokens = forms.IntegerField(required=False, min_value=1, max_value=1_000_000, label="Max tokens")
    reasoning_effort = forms.ChoiceField(required=False, choices=REASONING_EFFORTS, label="Reasoning effort")

    PARAMETERS = ("temperature", "top_p", "max_tokens", "reasoning_effort")

    @classmethod
    def for_session(cls, session: ChatSession, data: Any = None) -> ChatSettingsForm:
        return cls(data, initial={"system_prompt": session.system_prompt, **session.parameters})

    def save(self, session: ChatSession) -> None:
        session.system_prompt = self.cleaned_data["system_prompt"].strip()
        session.parameters = {name: self.cleaned_data[name] for name in self.PARAMETERS
                              if self.cleaned_data[name] not in (None, "")}
        session.save(update_fields=["system_prompt", "parameters", "updated_at"])
