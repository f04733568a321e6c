"""One settings module, read from the environment.

With nothing set, InstrumentShare runs embedded: a SQLite file under ``var/``, Celery tasks
executed in-process, e-mail written to files under ``var/mail/``, Stripe off. Each variable
below switches one part to the real service:

``DATABASE_URL``   postgres://user:pass@host:5432/name (or sqlite:///path)
``REDIS_URL``      redis://host:6379/0: Celery broker and result store, and the cache
``EMAIL_URL``      smtp://user:pass@host:25 (smtp+tls:// for STARTTLS, smtps:// for TLS)
``SECRET_KEY``     required in production; setting it turns DEBUG off unless DEBUG says otherwise
``ALLOWED_HOSTS``  comma separated
``DEBUG``          1/0
``STRIPE_SECRET_KEY`` / ``STRIPE_WEBHOOK_SECRET`` / ``STRIPE_API_BASE``  Stripe (off when unset)
``OIDC_RP_CLIENT_ID`` / ``OIDC_RP_CLIENT_SECRET`` / ``OIDC_OP_*``  login through the institution (off when unset)
"""

from __future__ import annotations

import importlib.util
import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote, urlsplit

import dj_database_url
from csp.constants import NONCE
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("INSTRUMENTSHARE_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# --- core ---------------------------------------------------------------------------------
EMBEDDED_SECRET_KEY = "embedded-development-key-not-for-production-" + "x" * 20
SECRET_KEY = os.environ.get("SECRET_KEY") or EMBEDDED_SECRET_KEY
# Without a real secret key we are on a developer's machine or in the demo: debug on.
DEBUG = env_bool("DEBUG", default=SECRET_KEY == EMBEDDED_SECRET_KEY)
if not DEBUG and SECRET_KEY == EMBEDDED_SECRET_KEY:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("Set SECRET_KEY: the embedded development key is public and DEBUG is off.")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "axes",
    "csp",
    "ninja",
    "instrumentshare.core",
    "instrumentshare.accounts",
    "instrumentshare.audit",
    "catalog",
    "bookings",
    "submissions",
    "usage",
    "billing",
    "oversight",
    "portal",
]
# The city generator and benchmark commands, in a checkout only (not in the package or the image).
if importlib.util.find_spec("devtools") is not None:
    INSTALLED_APPS.append("devtools")

MIDDLEWARE = [
    "instrumentshare.core.middleware.RequestIdMiddleware",
    "instrumentshare.core.middleware.ContentSecurityPolicyMiddleware",  # django-csp's, fixed for JSON
    "portal.metrics.MetricsMiddleware",
    "instrumentshare.core.middleware_db.DatabaseUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Control characters and malformed bodies: a 422/400 before any view, form or limiter reads them.
    "instrumentshare.core.input_rules.InputRulesMiddleware",
    "instrumentshare.core.pages.RefusalMiddleware",   # a DomainError on a page: a message, never a 500
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as its documentation asks: turns a locked-out login into a 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "instrumentshare.urls"
WSGI_APPLICATION = "instrumentshare.wsgi.application"
ASGI_APPLICATION = "instrumentshare.asgi.application"
AUTH_USER_MODEL = "accounts.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "csp.context_processors.nonce",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.navigation",
            ],
        },
    },
]

# --- database -----------------------------------------------------------------------------
VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Django's backend, whose health check asks the socket before it sends SELECT 1 (no round trip
        # per request on a healthy connection: instrumentshare/core/postgresql/base.py).
        DATABASES["default"]["ENGINE"] = "instrumentshare.core.postgresql"
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": VAR_DIR / "instrumentshare.sqlite3"}}

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the one writer; IMMEDIATE takes the write lock at BEGIN so
    # concurrent writers queue on the busy timeout instead of failing on lock upgrade.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
    }
    # A file (not memory) so a worker process can share it; one per test run so runs never collide.
    DATABASES["default"].setdefault("TEST", {})["NAME"] = str(VAR_DIR / f"test-{os.getpid()}.sqlite3")
else:
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", 5)
    # Django turns psycopg's prepared statements off (``None``); psycopg then ignores ``prepare=True`` too.
    # Django's own cursors bind on the client and never prepare; the hot paths' statements
    # (``core.rows.run``) ask for it by name.
    DATABASES["default"]["OPTIONS"].setdefault("prepare_threshold", 5)
    # One test database per test run, so two runs on one server never drop each other's.
    DATABASES["default"].setdefault("TEST", {})["NAME"] = f"test_{DATABASES['default']['NAME']}_{os.getpid()}"

# --- cache, Celery ------------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    # Django's Redis cache with one client per pool (core.cache). Short timeouts: with Redis down a
    # request must not wait; the rate limiter then counts per process (accounts.auth) and other
    # readers answer 503 with Retry-After (core.middleware_db).
    CACHES = {"default": {"BACKEND": "instrumentshare.core.cache.RedisCache", "LOCATION": REDIS_URL,
                          "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 1}}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or None
# Embedded: tasks run in-process, synchronously, right after the transaction commits.
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Publishing on the request path (after commit) must not wait for a broker that is down: a short
# connection timeout, and no retries (bookings.services.notifications.wake_outbox); the beat's outbox sweep
# sends what could not be handed over.
CELERY_BROKER_CONNECTION_TIMEOUT = 1
# Task time limits match the longest task: a month's close of a large provider and the yearly
# statistics refresh of a whole city take minutes at the benchmark scale (docs/operations.md). The soft
# limit lets a task record its failure (a close is marked failed and can be requested again); the hard
# limit stops one that hangs.
CELERY_TASK_SOFT_TIME_LIMIT = int(os.environ.get("CELERY_TASK_SOFT_TIME_LIMIT", "840"))
CELERY_TASK_TIME_LIMIT = int(os.environ.get("CELERY_TASK_TIME_LIMIT", "900"))
# A task whose worker died unacknowledged is handed out again after this many seconds: just above
# the hard limit, so a task still running is never handed out twice, and a dead worker's task waits
# minutes, not Redis's default hour.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", str(CELERY_TASK_TIME_LIMIT + 60))),
    # How often a worker sweeps for such tasks (seconds, and every Nth sweep scans Redis).
    "unacked_restore_interval": int(os.environ.get("CELERY_UNACKED_RESTORE_INTERVAL", "10")),
    "unacked_restore_throttle": int(os.environ.get("CELERY_UNACKED_RESTORE_THROTTLE", "10")),
    "socket_connect_timeout": 1,
}
CELERY_BEAT_SCHEDULE = {
    "audit-seal": {"task": "instrumentshare.audit.tasks.seal_audit_task", "schedule": timedelta(minutes=5)},
    "booking-reminders": {"task": "bookings.tasks.send_due_reminders", "schedule": timedelta(minutes=5)},
    "notification-outbox": {"task": "bookings.tasks.sweep_outbox", "schedule": timedelta(minutes=1)},
    "waiting-lists": {"task": "bookings.tasks.process_waitlists", "schedule": timedelta(minutes=1)},
    "calendar-replies": {"task": "bookings.tasks.read_replies", "schedule": timedelta(minutes=1)},
    "sample-request-mail": {"task": "submissions.tasks.sweep_request_mail", "schedule": timedelta(minutes=1)},
    "billing-stripe-sync": {"task": "billing.tasks.sync_stripe", "schedule": timedelta(minutes=15)},
    "oversight-statistics": {"task": "oversight.tasks.refresh_statistics_task", "schedule": timedelta(hours=1)},
    "oversight-national-export": {"task": "oversight.tasks.export_national_task", "schedule": timedelta(days=1)},
    "catalog-opening-windows": {"task": "catalog.tasks.refresh_opening_windows_task", "schedule": timedelta(days=1)},
    "availability-stored-days": {"task": "bookings.tasks.keep_stored_days_task", "schedule": timedelta(hours=1)},
    "worker-heartbeat": {"task": "portal.tasks.heartbeat", "schedule": timedelta(seconds=30)},
    "usage-reconciliation": {"task": "usage.tasks.reconcile_recent",
                             "schedule": timedelta(seconds=int(os.environ.get("RECONCILE_EVERY_SECONDS", "900"))),
                             "kwargs": {"days": int(os.environ.get("RECONCILE_WINDOW_DAYS", "7"))}},
}

# An outbox row pending longer than this is overdue: a metric (instrumentshare_outbox_overdue) to
# alert on, and the admin's list of notifications shows it.
OUTBOX_ALERT_MINUTES = int(os.environ.get("OUTBOX_ALERT_MINUTES", "15"))
# After a failed try an outbox row waits first, 2 x first, 4 x first ... up to the ceiling (seconds),
# and is never given up; its task's own quick retries (a brief SMTP hiccup) are counted apart.
OUTBOX_BACKOFF_FIRST_SECONDS = int(os.environ.get("OUTBOX_BACKOFF_FIRST_SECONDS", "60"))
OUTBOX_BACKOFF_CEILING_SECONDS = int(os.environ.get("OUTBOX_BACKOFF_CEILING_SECONDS", "3600"))
OUTBOX_TASK_RETRIES = int(os.environ.get("OUTBOX_TASK_RETRIES", "5"))

# --- auth ---------------------------------------------------------------------------------
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    # Counts failed logins and refuses a username+address pair after too many (django-axes).
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("LOGIN_LOCKOUT_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "instrumentshare.accounts.views.lockout_response"
AXES_IPWARE_PROXY_COUNT = int(os.environ.get("PROXY_COUNT", "0")) or None
# Per-user request budgets for the expensive or abusable writes (429 with Retry-After beyond them).
RATE_LIMIT_BOOKINGS = os.environ.get("RATE_LIMIT_BOOKINGS", "60/m")
RATE_LIMIT_EXPORTS = os.environ.get("RATE_LIMIT_EXPORTS", "20/m")
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

# Optional login through the institution's OpenID Connect provider (mozilla-django-oidc); off
# unless OIDC_RP_CLIENT_ID is set. The claims mapping is in instrumentshare/accounts/oidc.py and
# the README ("Institutional login").
OIDC_RP_CLIENT_ID = os.environ.get("OIDC_RP_CLIENT_ID", "")
OIDC_RP_CLIENT_SECRET = os.environ.get("OIDC_RP_CLIENT_SECRET", "")
OIDC_OP_ISSUER = os.environ.get("OIDC_OP_ISSUER", "")  # checked against the ID token's iss when set
OIDC_OP_AUTHORIZATION_ENDPOINT = os.environ.get("OIDC_OP_AUTHORIZATION_ENDPOINT", "")
OIDC_OP_TOKEN_ENDPOINT = os.environ.get("OIDC_OP_TOKEN_ENDPOINT", "")
OIDC_OP_USER_ENDPOINT = os.environ.get("OIDC_OP_USER_ENDPOINT", "")
OIDC_OP_JWKS_ENDPOINT = os.environ.get("OIDC_OP_JWKS_ENDPOINT", "")
OIDC_RP_SIGN_ALGO = os.environ.get("OIDC_RP_SIGN_ALGO", "RS256")
OIDC_RP_SCOPES = os.environ.get("OIDC_RP_SCOPES", "openid email profile")
OIDC_USE_PKCE = env_bool("OIDC_USE_PKCE", True)
OIDC_PROVIDER_NAME = os.environ.get("OIDC_PROVIDER_NAME", "")  # "Sign in with <this>"; default: "your institution"
OIDC_CREATE_USER = env_bool("OIDC_CREATE_USERS", True)
OIDC_ALLOWED_EMAIL_DOMAINS = env_list("OIDC_ALLOWED_EMAIL_DOMAINS")  # empty: any domain the provider vouches for
OIDC_ORGANIZATION_CREDIT_CODE = os.environ.get("OIDC_ORGANIZATION_CREDIT_CODE", "")  # new users' organization
OIDC_USERNAME_CLAIM = os.environ.get("OIDC_USERNAME_CLAIM", "preferred_username")
OIDC_NAME_CLAIM = os.environ.get("OIDC_NAME_CLAIM", "name")
OIDC_TIMEOUT = int(os.environ.get("OIDC_TIMEOUT", "10"))
OIDC_AUTHENTICATION_CALLBACK_URL = "accounts:oidc_callback"
LOGIN_REDIRECT_URL_FAILURE = "/accounts/login/?institution_login=failed"
if OIDC_RP_CLIENT_ID:
    AUTHENTICATION_BACKENDS.append("instrumentshare.accounts.oidc.InstitutionBackend")

# --- i18n, time ---------------------------------------------------------------------------
LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
USE_TZ = True
TIME_ZONE = "Asia/Shanghai"  # display default; everything is stored in UTC
DEFAULT_INSTRUMENT_TIME_ZONE = "Asia/Shanghai"
DEFAULT_CURRENCY = "CNY"
# The CJK TrueType font invoice PDFs embed (billing/pdf.py): INVOICE_FONT_PATH, else Debian's
# fonts-wqy-microhei (installed by the image and by make test). Without one, PDFs fall back to a
# font that is not embedded and `manage.py check` warns (billing.W001).
INVOICE_FONT_PATHS = ([os.environ["INVOICE_FONT_PATH"]] if os.environ.get("INVOICE_FONT_PATH") else [
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"])

# --- static, media ------------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "instrumentshare" / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "static"))
MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Files only their owners may read (a sample request's attachments and results): outside MEDIA_ROOT,
# never served by URL; the app streams them after checking who asks.
PRIVATE_MEDIA_ROOT = Path(os.environ.get("PRIVATE_MEDIA_ROOT", VAR_DIR / "private"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "private": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": PRIVATE_MEDIA_ROOT, "base_url": "/not-served/"}},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# A sample request's files: the largest accepted, and how long a signed download link lives.
SUBMISSION_FILE_MAX_BYTES = int(os.environ.get("SUBMISSION_FILE_MAX_MB", "16")) * 1024 * 1024
SUBMISSION_LINK_SECONDS = int(os.environ.get("SUBMISSION_LINK_SECONDS", "900"))

# --- e-mail -------------------------------------------------------------------------------
EMAIL_URL = os.environ.get("EMAIL_URL", "")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "InstrumentShare <noreply@instrumentshare.local>")
# The mailbox calendar clients reply to (the invitations' ORGANIZER); read by `manage.py read_replies`.
IMIP_ADDRESS = os.environ.get("IMIP_ADDRESS", "")
# Where `read_replies` fetches those replies: imaps://user:password@host:993/INBOX (or imap:// for STARTTLS).
IMIP_IMAP_URL = os.environ.get("IMIP_IMAP_URL", "")
if EMAIL_URL:
    _mail = urlsplit(EMAIL_URL)
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = _mail.hostname or "localhost"
    EMAIL_PORT = _mail.port or 25
    EMAIL_HOST_USER = unquote(_mail.username or "")
    EMAIL_HOST_PASSWORD = unquote(_mail.password or "")
    EMAIL_USE_TLS = _mail.scheme == "smtp+tls"
    EMAIL_USE_SSL = _mail.scheme == "smtps"
    EMAIL_TIMEOUT = 10
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = VAR_DIR / "mail"

# --- Stripe -------------------------------------------------------------------------------
STRIPE_SECRET_KEY = os.environ.get("STRIPE_SECRET_KEY", "")
STRIPE_PUBLISHABLE_KEY = os.environ.get("STRIPE_PUBLISHABLE_KEY", "")
STRIPE_WEBHOOK_SECRET = os.environ.get("STRIPE_WEBHOOK_SECRET", "")
STRIPE_API_BASE = os.environ.get("STRIPE_API_BASE", "")  # e.g. a local test server

# --- security -----------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]

# Content security policy (django-csp): our own scripts and styles only, nothing from elsewhere.
# Stripe.js is allowed where payments are on; inline scripts need the per-request nonce.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'", NONCE, *(["https://js.stripe.com"] if STRIPE_SECRET_KEY else [])],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'", *(["https://api.stripe.com"] if STRIPE_SECRET_KEY else [])],
        "frame-src": ["'self'", *(["https://js.stripe.com", "https://hooks.stripe.com"] if STRIPE_SECRET_KEY else [])],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'self'"],
        "object-src": ["'none'"],
    },
}
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
# /readyz reports the workers' heartbeat; set READYZ_REQUIRE_WORKER=1 to fail readiness without it.
WORKER_HEARTBEAT_MAX_AGE = int(os.environ.get("WORKER_HEARTBEAT_MAX_AGE", "180"))
READYZ_REQUIRE_WORKER = env_bool("READYZ_REQUIRE_WORKER", False)

# --- API ----------------------------------------------------------------------------------
NINJA_PAGINATION_PER_PAGE = 50
NINJA_PAGINATION_MAX_LIMIT = 200
API_TOKEN_PREFIX = "ist"

# --- logging ------------------------------------------------------------------------------
LOG_FORMAT = os.environ.get("LOG_FORMAT", "text" if DEBUG else "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "instrumentshare.core.logging.RequestIdFilter"}},
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO").upper()},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- domain rules (configurable per city) -------------------------------------------------
from decimal import Decimal  # noqa: E402

# Qingdao: publicly funded instruments from 200,000 CNY are listed within 20 working days of
# purchase. The national platform: from 500,000 CNY, reported within 30 working days of acceptance.
MANDATORY_LISTING_VALUE = Decimal(os.environ.get("MANDATORY_LISTING_VALUE", "200000"))
LISTING_DEADLINE_WORKING_DAYS = int(os.environ.get("LISTING_DEADLINE_WORKING_DAYS", "20"))
NATIONAL_REPORT_VALUE = Decimal(os.environ.get("NATIONAL_REPORT_VALUE", "500000"))
NATIONAL_REPORT_WORKING_DAYS = int(os.environ.get("NATIONAL_REPORT_WORKING_DAYS", "30"))

# Bookings: credit score (no-shows and late cancellations lower it) and reminders.
CREDIT_INITIAL_SCORE = int(os.environ.get("CREDIT_INITIAL_SCORE", "100"))
CREDIT_MIN_TO_BOOK = int(os.environ.get("CREDIT_MIN_TO_BOOK", "60"))
CREDIT_NO_SHOW_PENALTY = int(os.environ.get("CREDIT_NO_SHOW_PENALTY", "10"))
CREDIT_LATE_CANCEL_PENALTY = int(os.environ.get("CREDIT_LATE_CANCEL_PENALTY", "5"))
BOOKING_REMINDER_HOURS = int(os.environ.get("BOOKING_REMINDER_HOURS", "24"))
MAX_QUERY_RANGE_DAYS = int(os.environ.get("MAX_QUERY_RANGE_DAYS", "92"))
# Waiting lists: how long an offer of freed time is held for the person first in line, how many
# entries one person may have waiting or offered at once, and the longest window an entry may span.
WAITLIST_OFFER_MINUTES = int(os.environ.get("WAITLIST_OFFER_MINUTES", "30"))
WAITLIST_MAX_ACTIVE_ENTRIES = int(os.environ.get("WAITLIST_MAX_ACTIVE_ENTRIES", "5"))
WAITLIST_MAX_WINDOW_DAYS = int(os.environ.get("WAITLIST_MAX_WINDOW_DAYS", "14"))

# Usage: a session still open this long after its start was left open by a crashed logger.
USAGE_OPEN_SESSION_LIMIT_HOURS = int(os.environ.get("USAGE_OPEN_SESSION_LIMIT_HOURS", "12"))
CHECKIN_OPENS_MINUTES_BEFORE = int(os.environ.get("CHECKIN_OPENS_MINUTES_BEFORE", "15"))
# Overruns and early finishes smaller than this are normal and not flagged.
USAGE_FLAG_TOLERANCE_MINUTES = int(os.environ.get("USAGE_FLAG_TOLERANCE_MINUTES", "15"))
