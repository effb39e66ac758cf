"""The form that makes a gateway key on the Keys page."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django import forms
from django.utils import timezone

from boochat.models import MAX_SCOPE_PATTERNS
from providers.access import parse_patterns

MAX_KEYS = 50  # active keys one user keeps


class KeyForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="Who or what uses it: opencode on the laptop, a script.")
    expires = forms.DateField(required=False, help_text="Optional: the key stops working when this day begins.",
                              widget=forms.DateInput(attrs={"type": "date"}))
    scope = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}),
                            help_text="Optional: the models it may use, one a line: provider/*, provider/model or "
                                      "pool/model. Empty: every model you may use.")

    def clean_name(self) -> str:
        name = " ".join(self.cleaned_data["name"].split())
        if not name or "\x00" in name:
            raise forms.ValidationError("Name the key.")
        return name

    def clean_expires(self) -> datetime | None:
        day = self.cleaned_data["expires"]
        if day is None:
            return None
        moment = datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())
        if moment <= timezone.now():
            raise forms.ValidationError("The expiry must be in the future.")
        if moment > timezone.now() + timedelta(days=3650):
            raise forms.ValidationError("The expiry must be within ten years.")
        return moment

    def clean_scope(self) -> list[str]:
        try:
            patterns = list(parse_patterns(self.cleaned_data["scope"]))
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        if len(patterns) > MAX_SCOPE_PATTERNS:
            raise forms.ValidationError(f"At most {MAX_SCOPE_PATTERNS} patterns.")
        return patterns
