"""Sessions logged in through Django's ModelBackend now name boochat.sessions.ModelBackend, the
configured backend (a session naming a backend that is not configured is logged out)."""

import logging

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY
from django.contrib.sessions.backends.cached_db import KEY_PREFIX
from django.core.cache import caches
from django.db import migrations
from django.utils import timezone

DJANGOS = "django.contrib.auth.backends.ModelBackend"
OURS = "boochat.sessions.ModelBackend"
logger = logging.getLogger(__name__)


def move_sessions(apps, old: str, new: str) -> int:
    """Rewrite the live sessions logged in through `old` to name `new`; how many there were."""
    from django.contrib.sessions.backends.db import SessionStore

    codec = SessionStore()
    moved = []
    for row in apps.get_model("sessions", "Session").objects.filter(expire_date__gt=timezone.now()).iterator():
        data = codec.decode(row.session_data)  # {} for a session it cannot read: left as it is
        if data.get(BACKEND_SESSION_KEY) == old:
            data[BACKEND_SESSION_KEY] = new
            row.session_data = codec.encode(data)
            moved.append(row)
    apps.get_model("sessions", "Session").objects.bulk_update(moved, ["session_data"], batch_size=500)
    if moved and settings.SESSION_ENGINE == "django.contrib.sessions.backends.cached_db":
        try:  # the cached copies still name the old backend; the next read takes the rewritten row
            caches[settings.SESSION_CACHE_ALIAS].delete_many([KEY_PREFIX + row.session_key for row in moved])
        except Exception as exc:  # noqa: BLE001 - the cache could not be reached
            logger.warning("Could not clear %d cached sessions; they log in again: %s", len(moved), exc)
    return len(moved)


class Migration(migrations.Migration):
    dependencies = [
        ("boochat", "0001_initial"),
        ("sessions", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(lambda apps, _: move_sessions(apps, DJANGOS, OURS),
                             lambda apps, _: move_sessions(apps, OURS, DJANGOS)),
    ]
