from django.apps import AppConfig


class BooChatConfig(AppConfig):
    name = "boochat"
    verbose_name = "BooChat"
