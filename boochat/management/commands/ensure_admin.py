from __future__ import annotations

import os
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Create the first admin account if there is no superuser yet. The password is "
        "BOOCHAT_ADMIN_PASSWORD, or a generated one printed once."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            return
        username = os.environ.get("BOOCHAT_ADMIN_USERNAME", "admin").strip() or "admin"
        password = os.environ.get("BOOCHAT_ADMIN_PASSWORD", "")
        if User.objects.filter(username=username).exists():
            self.stderr.write(
                f"No superuser exists, but the user {username!r} does: run `manage.py createsuperuser`."
            )
            return
        generated = not password
        if generated:
            password = secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        if generated:
            self.stdout.write(
                self.style.WARNING(
                    f"Created the admin account {username!r} with the password: {password}\n"
                    "It is shown only this once; change it at /admin/password_change/."
                )
            )
        else:
            self.stdout.write(f"Created the admin account {username!r} (password from BOOCHAT_ADMIN_PASSWORD).")
