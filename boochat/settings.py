"""BooChat settings, driven by environment variables (every one is listed in the README)."""

from __future__ import annotations

import ipaddress
import os
import secrets
import tempfile
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from boochat.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

DATA_DIR = Path(env_str("BOOCHAT_DATA_DIR") or BASE_DIR / "var")


def _private_file(path: Path, content: str = "") -> None:
    """Create `path` readable by its owner only (from the first byte, not chmod-ed after), unless it
    exists. Atomic: processes starting together all end up reading the one file that won."""
    DATA_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.exists():
        return
    fd, temporary = tempfile.mkstemp(dir=DATA_DIR, prefix=f".{path.name}.")  # mode 0600
    try:
        os.write(fd, content.encode())
        os.close(fd)
        os.link(temporary, path)
    except FileExistsError:
        pass  # another process was first
    finally:
        os.unlink(temporary)


def _secret_key() -> str:
    """BOOCHAT_SECRET_KEY, or a random key kept in DATA_DIR so `make run` needs no setup."""
    if key := env_str("BOOCHAT_SECRET_KEY"):
        return key
    key_file = DATA_DIR / "secret_key"
    _private_file(key_file, secrets.token_urlsafe(50))
    return key_file.read_text().strip()


DEBUG = env_bool("BOOCHAT_DEBUG", False)
SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("BOOCHAT_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("BOOCHAT_CSRF_TRUSTED_ORIGINS", "")
CSRF_FAILURE_VIEW = "boochat.views.csrf_failure"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials.apps.SimpleAppConfig",
    "axes",
    "providers",
    "settings_app",
    "tools",
    "boochat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "boochat.security.content_security_policy",
    "boochat.static.StaticFilesMiddleware",
    "boochat.middleware.SessionMiddleware",
    "boochat.middleware.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "boochat.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "boochat.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "boochat.urls"
WSGI_APPLICATION = "boochat.wsgi.application"
ASGI_APPLICATION = "boochat.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "settings_app.context_processors.theme",
            ],
            "builtins": ["template_partials.templatetags.partials"],
            "loaders": [
                (
                    "template_partials.loader.Loader",
                    [
                        (
                            "django.template.loaders.cached.Loader",
                            [
                                "django.template.loaders.filesystem.Loader",
                                "django.template.loaders.app_directories.Loader",
                            ],
                        )
                    ],
                )
            ],
        },
    },
]

_sqlite_path = DATA_DIR / "db.sqlite3"
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL") or f"sqlite:///{_sqlite_path}",
        conn_max_age=env_int("BOOCHAT_DB_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    if DATABASES["default"]["NAME"] == str(_sqlite_path):
        _private_file(_sqlite_path)  # SQLite gives its -wal and -shm files the same mode
    # WAL lets the picker read while a chat writes; a busy timeout instead of "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # A file, not Django's shared in-memory database, so tests with concurrent writers see SQLite's
    # real locking (busy timeout) rather than shared-cache table locks.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}

elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A database that is down fails a request within this many seconds (a 503 that names it,
    # boochat.outages), instead of holding it for as long as the pool or libpq would wait.
    DB_TIMEOUT = env_int("BOOCHAT_DB_TIMEOUT", 5)
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = DB_TIMEOUT
    # Each kept connection is checked before it is used (with the pool: psycopg's check_connection as
    # the pool hands it out): after a PostgreSQL restart the kept ones are dead, and a request must get
    # a new one rather than the error.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if env_bool("BOOCHAT_DB_POOL", True):
        # Django's psycopg pool: chat streams give their connection back while they wait on hosts
        # (boochat.database.release_connection), which with a pool costs nothing. Per worker process.
        if DATABASES["default"]["CONN_MAX_AGE"]:
            raise ImproperlyConfigured("BOOCHAT_DB_CONN_MAX_AGE must be 0 with the connection pool (BOOCHAT_DB_POOL).")
        DATABASES["default"]["OPTIONS"]["pool"] = {
            "min_size": 1, "max_size": env_int("BOOCHAT_DB_POOL_SIZE", 20), "timeout": DB_TIMEOUT,
        }

REDIS_URL = env_str("REDIS_URL")
BOOCHAT_CACHE_TIMEOUT = env_int("BOOCHAT_CACHE_TIMEOUT", 3)
BOOCHAT_CACHE_PREFIX = env_str("BOOCHAT_CACHE_PREFIX", "boochat")
BOOCHAT_CACHE_TIMEOUT = env_int("BOOCHAT_CACHE_TIMEOUT", 3)
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": BOOCHAT_CACHE_PREFIX,
            # Redis that is down or unreachable fails a request within seconds (a 503 that names it).
            "OPTIONS": {"socket_connect_timeout": BOOCHAT_CACHE_TIMEOUT, "socket_timeout": BOOCHAT_CACHE_TIMEOUT},
        }
    }
    AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler"
    # Every request reads its session: from Redis, with the database behind it. Not with the
    # local-memory cache, where a logout would not reach the other workers' copies.
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"  # shared by the workers

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]

# Failed logins (django-axes): after BOOCHAT_LOGIN_FAILURE_LIMIT failures for one username, or from
# one client address, further attempts get 429 for BOOCHAT_LOGIN_COOLOFF_MINUTES. The counts live in
# Redis when REDIS_URL is set, else in the database: every worker and instance sees the same.
AXES_FAILURE_LIMIT = env_int("BOOCHAT_LOGIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("BOOCHAT_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_HTTP_RESPONSE_CODE = 429
# The client address is the connection's (uvicorn already takes X-Forwarded-For from a proxy listed in
# FORWARDED_ALLOW_IPS); a header a client sends itself must not pick whose attempts it counts against.
AXES_IPWARE_META_PRECEDENCE_ORDER = ["REMOTE_ADDR"]
AXES_COOLOFF_MESSAGE = "Too many failed logins: try again in a few minutes."
AXES_SENSITIVE_PARAMETERS: list[str] = []  # log who and from where; the password is always masked
# A username is logged escaped: one with a line break would otherwise write a forged log line.
AXES_CLIENT_STR_CALLABLE = "boochat.login_log.client_str"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("BOOCHAT_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("BOOCHAT_STATIC_ROOT") or BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Security. Cookies and headers are strict by default; BOOCHAT_HTTPS=true adds what only makes
# sense behind TLS (redirect, secure cookies, HSTS).
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True  # htmx sends the token from hx-headers, never from the cookie
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Every page's scripts and styles are files served by BooChat: no inline script, no eval, no CDN.
BOOCHAT_CSP = env_str("BOOCHAT_CSP", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                      "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
HTTPS = env_bool("BOOCHAT_HTTPS", False)
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env_int("BOOCHAT_HSTS_SECONDS", 31_536_000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("BOOCHAT_HSTS_INCLUDE_SUBDOMAINS", HTTPS)
SECURE_HSTS_PRELOAD = env_bool("BOOCHAT_HSTS_PRELOAD", HTTPS)
if env_bool("BOOCHAT_TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Providers (see providers/provider_file.py and the README).
LLAMA_PROVIDERS_PATH = env_str("LLAMA_PROVIDERS_PATH")
LLAMA_SWAP_URL = env_str("LLAMA_SWAP_URL")
LLAMA_SIDECAR_URL = env_str("LLAMA_SIDECAR_URL")
# Chat: the model for titles (composite id; empty: the session's own model), and for compaction
# summaries ("" = the session's model, "task" = the task model, or a composite id).
BOOCHAT_TASK_MODEL = env_str("BOOCHAT_TASK_MODEL")
# The model new chats start with for users who have used none yet (composite id; empty: the model marked
# "default for new chats" in admin or the provider file). See boochat/chat/starting_model.py.
BOOCHAT_DEFAULT_MODEL = env_str("BOOCHAT_DEFAULT_MODEL")
# Days a deleted chat stays in the trash (restorable) before it is deleted for good; 0: at once, no undo.
BOOCHAT_TRASH_DAYS = env_int("BOOCHAT_TRASH_DAYS", 30)
BOOCHAT_SUMMARY_MODEL = env_str("BOOCHAT_SUMMARY_MODEL")
# Seconds a title waits for its host (a hung host must not hold the request for the read timeout).
BOOCHAT_TASK_TIMEOUT = env_int("BOOCHAT_TASK_TIMEOUT", 20)
# An answer still "streaming" this many seconds past its provider's read timeout was left by a
# process that died; it is shown as interrupted with what was saved.
BOOCHAT_STALE_STREAM_GRACE = env_int("BOOCHAT_STALE_STREAM_GRACE", 60)
# The OpenAI-compatible gateway (/v1/): without a key only when explicitly opened (loopback installs).
BOOCHAT_GATEWAY_OPEN = env_bool("BOOCHAT_GATEWAY_OPEN", False)
# Web pages at these origins (scheme://host[:port]) may call the gateway from a browser (CORS);
# a browser's request from any other site is refused.
BOOCHAT_GATEWAY_ALLOWED_ORIGINS = env_list("BOOCHAT_GATEWAY_ALLOWED_ORIGINS", "")
# Seconds a /v1/responses answer is kept (per key) for a follow-up's `previous_response_id`; 0: none kept.
BOOCHAT_RESPONSES_TTL = env_int("BOOCHAT_RESPONSES_TTL", 3600)
# Seconds a request's body may take to arrive in full; slower gets 408.
BOOCHAT_BODY_TIMEOUT = env_int("BOOCHAT_BODY_TIMEOUT", 30)
# Largest request body (chat bodies with long histories or images are big); larger gets a 413. A chat
# send's limit follows from the attachment limits below, an import's from BOOCHAT_MAX_IMPORT_BYTES, and
# requests without a logged-in session get 64 KB (boochat.body_limit).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("BOOCHAT_MAX_BODY_BYTES", 32 * 1024 * 1024)
# Largest answer (bytes of the host's stream) BooChat relays and stores; past it the answer is cut and
# saved as interrupted, marked truncated, and the host's request closed. The gateway does not store
# answers and relays them whole.
BOOCHAT_MAX_ANSWER_BYTES = env_int("BOOCHAT_MAX_ANSWER_BYTES", 8 * 1024 * 1024)
# A chat answer's job stops after this many seconds, however much the host still has to say.
BOOCHAT_ANSWER_TIMEOUT = env_int("BOOCHAT_ANSWER_TIMEOUT", 3600, minimum=1)
# Rounds of tool calls one chat answer may make before it is ended with a notice.
BOOCHAT_TOOL_MAX_STEPS = env_int("BOOCHAT_TOOL_MAX_STEPS", 8, minimum=1)
# Files attached to one question, and the largest image and other file (PDF, text) accepted.
BOOCHAT_MAX_ATTACHMENTS = env_int("BOOCHAT_MAX_ATTACHMENTS", 4)
BOOCHAT_MAX_IMAGE_BYTES = env_int("BOOCHAT_MAX_IMAGE_BYTES", 5 * 1024 * 1024)
BOOCHAT_MAX_FILE_BYTES = env_int("BOOCHAT_MAX_FILE_BYTES", 10 * 1024 * 1024)
# A PDF's text is read in a child process within these: pages, bytes its streams expand to, the child's
# memory, and seconds for all the PDFs of one question. Past one, the text read so far is sent with a
# notice of where and why it was cut; a PDF of which nothing could be read within them is refused.
BOOCHAT_PDF_MAX_PAGES = env_int("BOOCHAT_PDF_MAX_PAGES", 500)
BOOCHAT_PDF_MAX_EXPANDED_BYTES = env_int("BOOCHAT_PDF_MAX_EXPANDED_BYTES", 32 * 1024 * 1024)
BOOCHAT_PDF_MAX_MEMORY_BYTES = env_int("BOOCHAT_PDF_MAX_MEMORY_BYTES", 256 * 1024 * 1024)
BOOCHAT_PDF_SECONDS = env_int("BOOCHAT_PDF_SECONDS", 3)
# Largest export file imported at /chat/import.
BOOCHAT_MAX_IMPORT_BYTES = env_int("BOOCHAT_MAX_IMPORT_BYTES", 32 * 1024 * 1024)
# Messages one import may hold (all its chats together); a larger file is refused before anything is
# written. An import holds SQLite's write lock while it runs, and other users' sends wait for it.
BOOCHAT_MAX_IMPORT_MESSAGES = env_int("BOOCHAT_MAX_IMPORT_MESSAGES", 20_000)
# Seconds an import may take in the database (PostgreSQL's statement_timeout within it too); past it
# nothing is kept. Below SQLite's 20-second busy timeout, so a send waiting behind an import still gets in.
BOOCHAT_IMPORT_TIMEOUT = env_int("BOOCHAT_IMPORT_TIMEOUT", 15)
# Turns of a chat's branch its page shows at once; "Show earlier turns" loads the ones before.
BOOCHAT_CHAT_PAGE_TURNS = env_int("BOOCHAT_CHAT_PAGE_TURNS", 50, minimum=1)
# Most favorites one user keeps (the picker renders every one on each page).
BOOCHAT_MAX_FAVORITES = env_int("BOOCHAT_MAX_FAVORITES", 500)
# Seconds a provider's model list is served before it is refreshed (in the background).
BOOCHAT_CATALOG_TTL = env_int("BOOCHAT_CATALOG_TTL", 15)
# Tool servers (MCP, tools/): seconds one tool call or one server's tool list may take; characters of
# a tool's result kept for the model (the rest is cut); seconds a server's tool list is served before
# it is listed again (in the background).
BOOCHAT_TOOL_TIMEOUT = env_int("BOOCHAT_TOOL_TIMEOUT", 30, minimum=1)
BOOCHAT_TOOL_RESULT_MAX_CHARS = env_int("BOOCHAT_TOOL_RESULT_MAX_CHARS", 20_000, minimum=100)
BOOCHAT_TOOL_LIST_TTL = env_int("BOOCHAT_TOOL_LIST_TTL", 60, minimum=1)
# Pools (providers/slots.py, providers/affinity.py): requests that find every member's slots taken
# wait in line, at most this many per pool model and this many seconds, then get a 503.
BOOCHAT_QUEUE_MAX = env_int("BOOCHAT_QUEUE_MAX", 200)
BOOCHAT_QUEUE_TIMEOUT = env_int("BOOCHAT_QUEUE_TIMEOUT", 120)
# How long a member is remembered as holding a prompt prefix, and the prefill rate that weighs a
# cached member's saved prefill against the wait for its next free slot.
BOOCHAT_AFFINITY_TTL = env_int("BOOCHAT_AFFINITY_TTL", 3600)
BOOCHAT_PREFILL_TOKENS_PER_SECOND = env_int("BOOCHAT_PREFILL_TOKENS_PER_SECOND", 1000)
# Model loads waiting or under way on one llama-swap host; past it a load is refused (503).
BOOCHAT_MAX_WAITING_LOADS = env_int("BOOCHAT_MAX_WAITING_LOADS", 4)
# Days usage records are kept (pruned daily); gateway requests and answers are recorded off the
# request's path, written in batches at most this many seconds apart.
BOOCHAT_USAGE_DAYS = env_int("BOOCHAT_USAGE_DAYS", 90)
BOOCHAT_USAGE_FLUSH_SECONDS = env_int("BOOCHAT_USAGE_FLUSH_SECONDS", 1)
# Off: no usage is recorded and no limit is checked (for benchmarks that compare).
BOOCHAT_USAGE = env_bool("BOOCHAT_USAGE", True)
BOOCHAT_USAGE_WRITER = True  # the background writer; the test suite turns it off where a test's transaction would block it
# The gateway's address as its users should write it (https://chat.lab.example); empty: as the
# browser reached the Connect page.
BOOCHAT_PUBLIC_URL = env_str("BOOCHAT_PUBLIC_URL").rstrip("/")
# Web search tools (tools/websearch.py): the SearXNG instance web_search asks (its JSON API; empty: no
# web search), and read_page's caps: bytes read of a page, seconds for the whole read (redirects
# included; web_search waits as long for SearXNG), characters of text returned at once (below
# BOOCHAT_TOOL_RESULT_MAX_CHARS, so the note saying where to read on is kept). Private,
# loopback, link-local and other non-public addresses are refused unless allowed: all of them, or
# only the listed networks (comma-separated, `10.20.0.0/16,192.168.1.5`), an intranet's choice.
BOOCHAT_SEARXNG_URL = env_str("BOOCHAT_SEARXNG_URL").rstrip("/")
BOOCHAT_TOOLS_ALLOW_PRIVATE_URLS = env_bool("BOOCHAT_TOOLS_ALLOW_PRIVATE_URLS", False)
BOOCHAT_TOOLS_ALLOWED_NETWORKS = env_list("BOOCHAT_TOOLS_ALLOWED_NETWORKS", "")
for _network in BOOCHAT_TOOLS_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(f"BOOCHAT_TOOLS_ALLOWED_NETWORKS: {_network!r} is not a network or an address "
                                   "(10.20.0.0/16, 192.168.1.5, fd00::/8).") from None
BOOCHAT_READ_PAGE_MAX_BYTES = env_int("BOOCHAT_READ_PAGE_MAX_BYTES", 2 * 1024 * 1024, minimum=1)
BOOCHAT_READ_PAGE_TIMEOUT = env_int("BOOCHAT_READ_PAGE_TIMEOUT", 10, minimum=1)
BOOCHAT_READ_PAGE_MAX_CHARS = env_int("BOOCHAT_READ_PAGE_MAX_CHARS", 15_000, minimum=100)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("BOOCHAT_LOG_LEVEL", "INFO").upper()},
    # httpx logs every request at INFO; BooChat logs what matters about providers itself.
    # axes logs every successful login at INFO as well; its failures and lockouts are warnings.
    "loggers": {"httpx": {"level": "WARNING"}, "httpx2": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}
