from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class BooChatConfig(AppConfig):
    name = "boochat"
    verbose_name = "BooChat"

    def ready(self) -> None:
        from boochat.gateway import keys
        from boochat.models import GatewayKey

        # The gateway's in-process key snapshot: a new or changed key counts at once.
        post_save.connect(keys.forget, sender=GatewayKey, dispatch_uid="boochat-keys-save")
        post_delete.connect(keys.forget, sender=GatewayKey, dispatch_uid="boochat-keys-delete")
