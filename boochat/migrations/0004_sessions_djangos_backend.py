"""Sessions logged in through boochat.sessions.ModelBackend (which no longer exists) name Django's
ModelBackend again, so nobody is logged out (a session naming a backend that is not configured is)."""

from importlib import import_module

from django.db import migrations

earlier = import_module("boochat.migrations.0002_sessions_login_backend")


class Migration(migrations.Migration):
    dependencies = [
        ("boochat", "0003_chatsession_fields"),
        ("sessions", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(lambda apps, _: earlier.move_sessions(apps, earlier.OURS, earlier.DJANGOS),
                             lambda apps, _: earlier.move_sessions(apps, earlier.DJANGOS, earlier.OURS)),
    ]
