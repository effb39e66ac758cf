"""Chat sessions, their messages, and compactions of long sessions."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse
from django.utils import timezone

from providers.snapshot import SnapshotRowsQuerySet


class ChatSessionQuerySet(models.QuerySet["ChatSession"]):
    def for_user(self, user: User) -> ChatSessionQuerySet:
        """The user's chats, archived ones too, not those in the trash."""
        return self.filter(user=user, deleted_at__isnull=True)

    def listed(self) -> ChatSessionQuerySet:
        """The chats of the chat list: those not archived (a chat is saved with its first message)."""
        return self.filter(archived_at__isnull=True)

    def in_trash(self, user: User) -> ChatSessionQuerySet:
        return self.filter(user=user, deleted_at__isnull=False).order_by("-deleted_at", "-id")

    def move_to_trash(self) -> int:
        """Put these chats in the trash (BOOCHAT_TRASH_DAYS); with no days kept, delete them now. Their
        answers still streaming stop (boochat.autosave finds them gone)."""
        if settings.BOOCHAT_TRASH_DAYS <= 0:
            return self.delete()[1].get("boochat.ChatSession", 0)
        return self.filter(deleted_at__isnull=True).update(deleted_at=timezone.now())

    def empty_trash(self) -> int:
        """Delete for good the chats in the trash for longer than BOOCHAT_TRASH_DAYS."""
        cutoff = timezone.now() - timedelta(days=max(0, settings.BOOCHAT_TRASH_DAYS))
        return self.filter(deleted_at__lt=cutoff).delete()[1].get("boochat.ChatSession", 0)


class Folder(models.Model):
    """A user's folder of chats: the chat list groups by folder."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_folders")
    name = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["user", "name"], name="folder_one_per_name")]

    def __str__(self) -> str:
        return self.name


TITLE_MAX_LENGTH = 200
MAX_SCOPE_PATTERNS = 100  # model patterns one gateway key's scope holds


class ChatSession(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_sessions")
    title = models.CharField(max_length=TITLE_MAX_LENGTH, blank=True)
    # A composite id (provider/model). Sessions stored by single-host versions hold bare ids; those
    # keep resolving to the default provider.
    model_id = models.CharField("model", max_length=330)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # When a request took on writing the title (boochat.chat.titles.claim_title): it is asked once.
    title_claimed_at = models.DateTimeField(null=True, blank=True, editable=False)
    pinned = models.BooleanField(default=False, help_text="Pinned chats head the list.")
    system_prompt = models.TextField(blank=True)
    # Sampling parameters the user set for this chat (temperature, top_p, max_tokens, reasoning_effort):
    # sent to the host as they are; a parameter not set here is not sent at all.
    parameters = models.JSONField(default=dict, blank=True)
    # The last message of the branch the page shows (boochat.chat.branches); the latest message when unset.
    shown_leaf = models.ForeignKey("Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                   editable=False)
    folder = models.ForeignKey(Folder, null=True, blank=True, on_delete=models.SET_NULL, related_name="chats")
    # Tool servers (their slugs) and single tools (their function names) the chat's answers may call.
    tools = models.JSONField(default=list, blank=True)
    # Function names the user chose "Always for this chat" for: they run without asking again.
    tools_always = models.JSONField(default=list, blank=True)
    # Archived: out of the chat list, still found by search and in the Archived view.
    archived_at = models.DateTimeField(null=True, blank=True)
    # In the trash since then (restorable for BOOCHAT_TRASH_DAYS, then deleted for good).
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = ChatSessionQuerySet.as_manager()

    class Meta:
        ordering = ["-pinned", "-updated_at", "-id"]

    def __str__(self) -> str:
        return self.title or "New chat"

    def get_absolute_url(self) -> str:
        return reverse("chat_session", args=[self.pk])


class Preset(models.Model):
    """A system prompt and parameters a user keeps: named, to choose when a chat starts, or the
    defaults of one model (`for_model`), which a new chat with that model starts from."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="presets")
    name = models.CharField(max_length=100, blank=True)
    for_model = models.CharField(max_length=330, blank=True, help_text="A composite id: these are its defaults.")
    system_prompt = models.TextField(blank=True)
    parameters = models.JSONField(default=dict, blank=True)
    tools = models.JSONField(default=list, blank=True, help_text="Tool servers and single tools turned on (ChatSession.tools).")

    class Meta:
        ordering = ["name", "for_model"]
        constraints = [
            models.UniqueConstraint(fields=["user", "name"], condition=~models.Q(name=""), name="preset_one_per_name"),
            models.UniqueConstraint(fields=["user", "for_model"], condition=~models.Q(for_model=""),
                                    name="preset_one_per_model"),
            models.CheckConstraint(condition=~models.Q(name="") | ~models.Q(for_model=""), name="preset_named_or_for_a_model"),
        ]

    def __str__(self) -> str:
        return self.name or f"Defaults for {self.for_model}"


class MessageState(models.TextChoices):
    PENDING = "pending", "Not started"
    STREAMING = "streaming", "Streaming"
    COMPLETE = "complete", "Complete"
    INTERRUPTED = "interrupted", "Interrupted"
    FAILED = "failed", "Failed"


class GeneratedText(models.Model):
    """What a model wrote and how: shared by chat answers and arena answers."""

    content = models.TextField(blank=True)
    reasoning = models.TextField(blank=True)
    tool_calls = models.JSONField(null=True, blank=True)
    # Which host and model produced it.
    model_id = models.CharField(max_length=330, blank=True)
    provider = models.CharField(max_length=64, blank=True)
    wire_model = models.CharField(max_length=255, blank=True)
    # When model_id is a pool's: the member that answered (its composite id).
    served_by = models.CharField(max_length=330, blank=True)
    state = models.CharField(max_length=12, choices=MessageState.choices, default=MessageState.COMPLETE)
    finish_reason = models.CharField(max_length=40, blank=True)
    error = models.TextField(blank=True)
    usage = models.JSONField(null=True, blank=True)
    timings = models.JSONField(null=True, blank=True)
    tokens_per_second = models.FloatField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True

    def update_fields(self, *names: str) -> bool:
        """Write these fields (and the time) with one UPDATE; False if the row was deleted meanwhile,
        with its chat or arena run. save() would insert it again."""
        values = {name: getattr(self, name) for name in names}
        rows = type(self).objects.filter(pk=self.pk)  # type: ignore[attr-defined]  # each concrete model's
        return rows.update(updated_at=timezone.now(), **values) > 0


class Message(GeneratedText):
    class Role(models.TextChoices):
        USER = "user", "User"
        ASSISTANT = "assistant", "Assistant"

    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="messages")
    # The message this one follows: an edited question and a regenerated answer are siblings of the
    # ones they replace, so a chat is a tree and the page shows one branch of it.
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="replies",
                               editable=False)
    role = models.CharField(max_length=10, choices=Role.choices)
    # An answer that called tools: its rounds before `content`, in order, each
    # {"text", "reasoning", "calls": [{"id", "function", "arguments", "result", "is_error", "duration_ms",
    # "approval"}]} (boochat.chat.tool_loop). The model sees each round as an assistant message with
    # tool_calls and one tool message per call.
    tool_rounds = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:40]}"

    @property
    def is_answer(self) -> bool:
        return self.role == self.Role.ASSISTANT

    @property
    def can_continue(self) -> bool:
        """An answer with text that was stopped (Stop, the host going away or failing mid-answer) or cut
        by the length limit: its host can go on from it (boochat.chat.turns.begin_continue)."""
        return self.is_answer and bool(self.content) and (
            self.state in (MessageState.INTERRUPTED, MessageState.FAILED)
            or (self.state == MessageState.COMPLETE and self.finish_reason == "length"))

    @property
    def cached_prompt_tokens(self) -> int | None:
        """Prompt tokens the host took from its cache (llama-server's `timings.cache_n`, or the
        OpenAI usage's `prompt_tokens_details.cached_tokens`), when it said."""
        timings = self.timings if isinstance(self.timings, dict) else {}
        if isinstance(timings.get("cache_n"), int):
            return timings["cache_n"]
        details = (self.usage or {}).get("prompt_tokens_details") if isinstance(self.usage, dict) else None
        cached = details.get("cached_tokens") if isinstance(details, dict) else None
        return cached if isinstance(cached, int) else None


class ToolDecision(models.Model):
    """The user's answer to a tool call waiting for approval. The answer's job, on whichever worker or
    instance runs it, reads it here (boochat.chat.jobs); one per call, the first wins."""

    class Choice(models.TextChoices):
        RUN = "run", "Run"
        ALWAYS = "always", "Always for this chat"
        DENY = "deny", "Deny"

    answer = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="tool_decisions")
    call_id = models.CharField(max_length=200)
    choice = models.CharField(max_length=6, choices=Choice.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["answer", "id"]
        constraints = [models.UniqueConstraint(fields=["answer", "call_id"], name="tool_decision_one_per_call")]

    def __str__(self) -> str:
        return f"{self.get_choice_display()} for call {self.call_id}"


class Attachment(models.Model):
    """A file sent with a question: an image (its bytes, sent as an image_url part to models that take
    images) or a text file or PDF (its text, added to the question with its name)."""

    class Kind(models.TextChoices):
        IMAGE = "image", "Image"
        TEXT = "text", "Text"

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attachments")
    kind = models.CharField(max_length=5, choices=Kind.choices)
    name = models.CharField(max_length=255)
    media_type = models.CharField(max_length=100, help_text="Found from the content, not from the name.")
    size = models.PositiveIntegerField(help_text="Bytes of the file as it was sent.")
    data = models.BinaryField(blank=True, help_text="An image's bytes.")
    text = models.TextField(blank=True, help_text="A text file's text, or the text found in a PDF.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["message", "id"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_image(self) -> bool:
        return self.kind == self.Kind.IMAGE


class Compaction(models.Model):
    """A summary standing in for every message up to `through_message` when talking to the model.
    The summarized messages stay in the session and on the page."""

    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="compactions")
    through_message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="+")
    summary = models.TextField()
    model_id = models.CharField(max_length=330, help_text="The model that wrote the summary.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["session", "through_message"]

    def __str__(self) -> str:
        return f"Compaction of {self.session} through message {self.through_message_id}"


class SharedChat(models.Model):
    """A read-only snapshot of one branch of a chat, open to anyone holding its link's token."""

    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="shares")
    token = models.CharField(max_length=64, unique=True, editable=False)
    title = models.CharField(max_length=TITLE_MAX_LENGTH)
    # [{"role", "content", "model"}] in order: the questions and answers of the branch shown when shared.
    messages = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Share of {self.title}"

    def get_absolute_url(self) -> str:
        return reverse("shared_chat", args=[self.token])


class GatewayKeyQuerySet(SnapshotRowsQuerySet):
    snapshot = "boochat.gateway.keys.active_keys"  # revocation is a bulk update

    def active(self) -> GatewayKeyQuerySet:
        """Keys neither revoked nor expired."""
        return self.filter(revoked_at__isnull=True).exclude(expires_at__lte=timezone.now())

    def for_user(self, user: User) -> GatewayKeyQuerySet:
        return self.filter(user=user)


class LimitsQuerySet(SnapshotRowsQuerySet):
    snapshot = "boochat.limits.limit_rows"


class LimitFields(models.Model):
    """Requests per minute, tokens per day and concurrent streams; empty is no limit."""

    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    tokens_per_day = models.PositiveBigIntegerField(null=True, blank=True,
                                                    help_text="Prompt and completion tokens, per UTC day.")
    concurrent_streams = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        abstract = True


class GatewayKey(LimitFields):
    """A bearer key for the OpenAI-compatible gateway, acting as its user. Only its SHA-256 is stored:
    the key is shown once, when it is made."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="gateway_keys",
                             help_text="The key acts as this user: model access and limits apply.")
    name = models.CharField(max_length=100, help_text="Who or what uses it (opencode on the laptop, a script).")
    prefix = models.CharField(max_length=12, editable=False, help_text="The key's first characters, to recognize it.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    scope = models.JSONField(default=list, blank=True,
                             help_text="Model patterns the key may use (provider/*, provider/model, pool/model); "
                                       "empty: every model its user may use.")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_from = models.GenericIPAddressField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = GatewayKeyQuerySet.as_manager()
    new_key = ""  # the key itself, on the row admin just created, until the page shows it; never stored

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "gateway API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def clean(self) -> None:
        from providers.access import parse_patterns

        if not isinstance(self.scope, list) or not all(isinstance(p, str) for p in self.scope):
            raise ValidationError({"scope": 'A list of model patterns: ["provider/*", "pool/model"], or [] for all.'})
        if len(self.scope) > MAX_SCOPE_PATTERNS:
            raise ValidationError({"scope": f"At most {MAX_SCOPE_PATTERNS} patterns."})
        try:
            parse_patterns(self.scope)
        except ValueError as exc:
            raise ValidationError({"scope": str(exc)}) from None

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > timezone.now())


class Limits(LimitFields):
    """A user's limits, or a group's default for its members (the most generous group's, per limit)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
                                related_name="limits")
    group = models.OneToOneField("auth.Group", null=True, blank=True, on_delete=models.CASCADE, related_name="limits")

    objects = LimitsQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "limits"
        ordering = ["group__name", "user__username"]
        constraints = [models.CheckConstraint(condition=models.Q(user__isnull=True) ^ models.Q(group__isnull=True),
                                              name="limits_for_a_user_or_a_group")]

    def __str__(self) -> str:
        return f"Limits of {self.user or self.group}"


class UsageRecord(models.Model):
    """One gateway request, chat answer or arena answer: who, through which key, which model, what it cost."""

    class Source(models.TextChoices):
        GATEWAY = "gateway", "Gateway"
        CHAT = "chat", "Chat"
        ARENA = "arena", "Arena"

    at = models.DateTimeField(db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    key = models.ForeignKey(GatewayKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    source = models.CharField(max_length=8, choices=Source.choices)
    endpoint = models.CharField(max_length=40, blank=True)
    model_id = models.CharField("requested model", max_length=330)
    served_by = models.CharField("served by", max_length=330, blank=True, help_text="The member (composite id) that answered.")
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    ttfb_ms = models.FloatField("time to first byte (ms)", null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    status = models.PositiveSmallIntegerField(help_text="The HTTP status of the reply (a chat answer: 200 unless it failed).")

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["user", "at"], name="usage_user_at")]

    def __str__(self) -> str:
        return f"{self.model_id} at {self.at:%Y-%m-%d %H:%M:%S}"


class ArenaRun(models.Model):
    """One prompt sent to several models at once, and a model's comparison of their answers."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="arena_runs")
    prompt = models.TextField()
    analyzer_model_id = models.CharField("analyzer", max_length=330)
    analysis = models.TextField(blank=True)
    analysis_state = models.CharField(max_length=12, choices=MessageState.choices, default=MessageState.STREAMING)
    analysis_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.prompt[:60]

    def get_absolute_url(self) -> str:
        return reverse("arena_run", args=[self.pk])


class ArenaAnswer(GeneratedText):
    run = models.ForeignKey(ArenaRun, on_delete=models.CASCADE, related_name="answers")
    # Arena answers are created before their streams start.
    state = models.CharField(max_length=12, choices=MessageState.choices, default=MessageState.PENDING)
    position = models.PositiveSmallIntegerField()
    ttft_ms = models.FloatField("time to first token (ms)", null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["run", "position"]
        constraints = [models.UniqueConstraint(fields=["run", "position"], name="arena_one_answer_per_column")]

    def __str__(self) -> str:
        return f"{self.model_id} in {self.run}"
