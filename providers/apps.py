from django.apps import AppConfig


class ProvidersConfig(AppConfig):
    name = "providers"
    verbose_name = "Providers"

    def ready(self) -> None:
        from providers import access
        from providers.models import ModelOverride, Provider
        from providers.routing import registry

        registry.follow(Provider, ModelOverride)
        access.follow_changes()
