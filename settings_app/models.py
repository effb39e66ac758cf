"""Per-user settings and favorite models."""

from __future__ import annotations

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import Max


class FavoriteQuerySet(models.QuerySet["Favorite"]):
    def for_user(self, user: models.Model) -> FavoriteQuerySet:
        return self.filter(user=user)

    def ids_for(self, user: models.Model) -> list[str]:
        return list(self.for_user(user).values_list("model_id", flat=True))

    def add(self, *, user: models.Model, model_id: str) -> None:
        """Add one favorite at the end; adding an existing one changes nothing (safe under races)."""
        position = (self.for_user(user).aggregate(last=Max("position"))["last"] or 0) + 1
        self.bulk_create([Favorite(user=user, model_id=model_id, position=position)], ignore_conflicts=True)

    def remove(self, *, user: models.Model, model_id: str) -> None:
        self.for_user(user).filter(model_id=model_id).delete()

    def toggle(self, *, user: models.Model, model_id: str) -> bool:
        """Flip one favorite; returns whether it is a favorite now. Other rows are never touched."""
        try:
            with transaction.atomic():
                position = (self.for_user(user).aggregate(last=Max("position"))["last"] or 0) + 1
                self.create(user=user, model_id=model_id, position=position)
                return True
        except IntegrityError:
            self.remove(user=user, model_id=model_id)
            return False

    @transaction.atomic
    def replace(self, *, user: models.Model, model_ids: list[str]) -> None:
        """Make the user's favorites exactly `model_ids`, in that order."""
        self.for_user(user).exclude(model_id__in=model_ids).delete()
        existing = {f.model_id: f for f in self.for_user(user).select_for_update()}
        for position, model_id in enumerate(model_ids, start=1):
            favorite = existing.get(model_id)
            if favorite is None:
                self.bulk_create([Favorite(user=user, model_id=model_id, position=position)], ignore_conflicts=True)
            elif favorite.position != position:
                favorite.position = position
                favorite.save(update_fields=["position"])


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


class UserSettings(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="boochat_settings")
    default_model = models.CharField(
        max_length=330, blank=True, help_text="Composite id of the model new chats start with."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "user settings"
        verbose_name_plural = "user settings"

    def __str__(self) -> str:
        return f"Settings of {self.user}"

    @classmethod
    def for_user(cls, user: models.Model) -> UserSettings:
        settings_row, _ = cls.objects.get_or_create(user=user)
        return settings_row
