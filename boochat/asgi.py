"""ASGI entry point: BooChat is served by an ASGI server so that streams are never buffered."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "boochat.settings")

application = get_asgi_application()
