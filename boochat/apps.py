from django.apps import AppConfig


class BooChatConfig(AppConfig):
    name = "boochat"
    verbose_name = "BooChat"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model

        from boochat import limits
        from boochat.gateway.keys import active_keys
        from boochat.models import GatewayKey

        # The gateway's key snapshot: a new or changed key (or a user made inactive) counts at once.
        active_keys.follow(GatewayKey, get_user_model())
        limits.follow_changes()
