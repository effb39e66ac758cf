from django.apps import AppConfig


class BooChatConfig(AppConfig):
    name = "boochat"
    verbose_name = "BooChat"

    def ready(self) -> None:
        from boochat.gateway import keys
        from boochat.models import GatewayKey

        keys.follow(GatewayKey)  # the gateway's key snapshot: a new or changed key counts at once
