from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('boochat', '0002_sessions_login_backend'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='chatsession',
            options={'ordering': ['-pinned', '-updated_at', '-id']},
        ),
        migrations.AddField(
            model_name='chatsession',
            name='title_claimed_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name='chatsession',
            name='pinned',
            field=models.BooleanField(default=False, help_text='Pinned chats head the list.'),
        ),
        migrations.AddField(
            model_name='chatsession',
            name='system_prompt',
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name='chatsession',
            name='parameters',
            field=models.JSONField(blank=True, default=dict),
        ),
    ]
