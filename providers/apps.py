from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class ProvidersConfig(AppConfig):
    name = "providers"
    verbose_name = "Providers"

    def ready(self) -> None:
        from providers.models import Provider
        from providers.routing import registry

        post_save.connect(registry.forget, sender=Provider, dispatch_uid="providers-registry-save")
        post_delete.connect(registry.forget, sender=Provider, dispatch_uid="providers-registry-delete")
