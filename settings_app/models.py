"""Per-user settings and favorite models."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import User
from django.db import models, transaction
from django.db.models import Max


class TooManyFavorites(ValueError):
    def __init__(self) -> None:
        super().__init__(f"a user keeps at most {settings.BOOCHAT_MAX_FAVORITES} favorites (BOOCHAT_MAX_FAVORITES); "
                         f"remove one first")


class FavoriteQuerySet(models.QuerySet["Favorite"]):
    def for_user(self, user: User) -> FavoriteQuerySet:
        return self.filter(user=user)

    def ids_for(self, user: User) -> list[str]:
        return list(self.for_user(user).values_list("model_id", flat=True))

    def add(self, *, user: User, model_id: str) -> None:
        """Add one favorite at the end; adding an existing one changes nothing (safe under races).
        TooManyFavorites past BOOCHAT_MAX_FAVORITES."""
        mine = self.for_user(user)
        stats = mine.aggregate(last=Max("position"), count=models.Count("id"))
        if stats["count"] >= settings.BOOCHAT_MAX_FAVORITES and not mine.filter(model_id=model_id).exists():
            raise TooManyFavorites()
        position = (stats["last"] or 0) + 1
        self.bulk_create([Favorite(user=user, model_id=model_id, position=position)], ignore_conflicts=True)

    def remove(self, *, user: User, model_id: str) -> None:
        self.for_user(user).filter(model_id=model_id).delete()

    def set(self, *, user: User, model_id: str, favorite: bool) -> None:
        """Make `model_id` a favorite or not; the same request twice changes nothing, so concurrent
        requests end in the state the last one asked for."""
        if favorite:
            self.add(user=user, model_id=model_id)
        else:
            self.remove(user=user, model_id=model_id)

    def toggle(self, *, user: User, model_id: str) -> bool:
        """Flip one favorite; returns whether it is a favorite now. Other rows are never touched."""
        if self.for_user(user).filter(model_id=model_id).exists():
            self.remove(user=user, model_id=model_id)
            return False
        self.add(user=user, model_id=model_id)
        return True

    @transaction.atomic
    def replace(self, *, user: User, model_ids: list[str]) -> None:
        """Make the user's favorites exactly `model_ids`, in that order: three statements at most."""
        self.for_user(user).exclude(model_id__in=model_ids).delete()
        existing = {f.model_id: f for f in self.for_user(user).select_for_update()}
        moved, new = [], []
        for position, model_id in enumerate(model_ids, start=1):
            favorite = existing.get(model_id)
            if favorite is None:
                new.append(Favorite(user=user, model_id=model_id, position=position))
            elif favorite.position != position:
                favorite.position = position
                moved.append(favorite)
        self.bulk_update(moved, ["position"], batch_size=500)
        self.bulk_create(new, ignore_conflicts=True, batch_size=500)


class Favorite(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="favorites")
    model_id = models.CharField("model", max_length=330, help_text="Composite id: provider/model.")
    position = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = FavoriteQuerySet.as_manager()

    class Meta:
        ordering = ["user", "position", "id"]
        constraints = [models.UniqueConstraint(fields=["user", "model_id"], name="settings_one_favorite_per_model")]

    def __str__(self) -> str:
        return f"{self.user} ★ {self.model_id}"


class Theme(models.TextChoices):
    SYSTEM = "system", "As the system (light or dark)"
    LIGHT = "light", "Light"
    DARK = "dark", "Dark"


class UserSettings(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="boochat_settings")
    default_model = models.CharField(
        max_length=330, blank=True, help_text="Composite id of the model new chats start with."
    )
    theme = models.CharField(max_length=6, choices=Theme.choices, default=Theme.SYSTEM,
                             help_text="Colours of every page; \"system\" follows the device's light or dark setting.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "user settings"
        verbose_name_plural = "user settings"

    def __str__(self) -> str:
        return f"Settings of {self.user}"

    @classmethod
    def theme_for(cls, user: User) -> str:
        """The user's theme without creating their settings row (every page asks)."""
        stored = cls.objects.filter(user=user).values_list("theme", flat=True).first()
        return stored or Theme.SYSTEM

    @classmethod
    def for_user(cls, user: User) -> UserSettings:
        settings_row, _ = cls.objects.get_or_create(user=user)
        return settings_row
