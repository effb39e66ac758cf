from django.apps import AppConfig


class BooChatConfig(AppConfig):
    name = "boochat"
    verbose_name = "BooChat"

    def ready(self) -> None:
        from boochat.gateway.keys import active_keys
        from boochat.models import GatewayKey

        active_keys.follow(GatewayKey)  # the gateway's key snapshot: a new or changed key counts at once
