import django.db.models.deletion
from django.db import migrations, models


def link_in_order(apps, schema_editor):
    """Each existing message follows the one before it in its chat: every chat is one branch."""
    Message = apps.get_model("boochat", "Message")
    previous: dict[int, int] = {}
    batch = []
    for message in Message.objects.order_by("session_id", "id").only("id", "session_id").iterator(chunk_size=2000):
        if message.session_id in previous:
            message.parent_id = previous[message.session_id]
            batch.append(message)
        previous[message.session_id] = message.id
        if len(batch) >= 1000:
            Message.objects.bulk_update(batch, ["parent"])
            batch.clear()
    Message.objects.bulk_update(batch, ["parent"])


class Migration(migrations.Migration):

    dependencies = [
        ('boochat', '0004_sessions_djangos_backend'),
    ]

    operations = [
        migrations.AddField(
            model_name='message',
            name='parent',
            field=models.ForeignKey(blank=True, editable=False, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='replies', to='boochat.message'),
        ),
        migrations.AddField(
            model_name='chatsession',
            name='shown_leaf',
            field=models.ForeignKey(blank=True, editable=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='boochat.message'),
        ),
        migrations.RunPython(link_in_order, migrations.RunPython.noop),
    ]
