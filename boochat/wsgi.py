"""WSGI entry point, for tools that want one. It cannot stream: serve boochat.asgi instead."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "boochat.settings")

application = get_wsgi_application()
