"""Chats are saved with their first message; the untitled chats "+ New chat" used to save before one
was sent, and left empty, go (those a minute old: a chat saved this minute may be taking its first
message now, by a worker not yet upgraded)."""

from datetime import timedelta

from django.db import migrations
from django.db.models import Exists, OuterRef
from django.utils import timezone


def delete_empty_chats(apps, schema_editor):
    ChatSession = apps.get_model("boochat", "ChatSession")
    Message = apps.get_model("boochat", "Message")
    ChatSession.objects.filter(title="", created_at__lt=timezone.now() - timedelta(minutes=1)).exclude(
        Exists(Message.objects.filter(session=OuterRef("pk")))).delete()


class Migration(migrations.Migration):
    dependencies = [("boochat", "0010_keys_usage_limits")]

    operations = [migrations.RunPython(delete_empty_chats, migrations.RunPython.noop, elidable=True)]
