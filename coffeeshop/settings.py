"""Settings for coffeeshop, read from the environment (documented in README.md and .env.example).

DJANGO_ENV=development (default) runs on an embedded SQLite file with no servers needed;
DJANGO_ENV=production refuses to start without SECRET_KEY and ALLOWED_HOSTS and passes
`manage.py check --deploy`.
"""

import ipaddress
import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from coffeeshop.logs import LOG_FORMATS, log_format, logging_config

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("COFFEESHOP_DATA_DIR", BASE_DIR / ".data"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DJANGO_ENV = os.environ.get("DJANGO_ENV", "development").strip().lower()
if DJANGO_ENV not in {"development", "production"}:
    raise ImproperlyConfigured("DJANGO_ENV must be 'development' or 'production'")
IS_PRODUCTION = DJANGO_ENV == "production"
DEBUG = env_bool("DEBUG", default=not IS_PRODUCTION)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if IS_PRODUCTION:
        raise ImproperlyConfigured("SECRET_KEY must be set when DJANGO_ENV=production")
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production-0123456789abcdefghijklmnop"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "" if IS_PRODUCTION else "localhost,127.0.0.1,[::1],testserver")
if IS_PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must be set when DJANGO_ENV=production")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

# --- Machines --------------------------------------------------------------------------------
# ENABLE_DEVICE_TOKEN=false trusts the device id in the path (bench rigs, never production:
# a system check refuses it there).
ENABLE_DEVICE_TOKEN = env_bool("ENABLE_DEVICE_TOKEN", default=True)
HEARTBEAT_INTERVAL_S = int(os.environ.get("HEARTBEAT_INTERVAL_S", "30"))
DEVICE_OFFLINE_TIMEOUT_S = int(os.environ.get("DEVICE_OFFLINE_TIMEOUT_S", "600"))
# A machine's boiler outside this range (°C) brews a wrong drink: a temperature alarm.
BREW_TEMPERATURE_RANGE_C = (
    float(os.environ.get("BREW_TEMPERATURE_MIN_C", "80")),
    float(os.environ.get("BREW_TEMPERATURE_MAX_C", "98")),
)
# One temperature/signal sample per online machine per this interval goes to the status history.
STATUS_SAMPLE_INTERVAL_S = int(os.environ.get("STATUS_SAMPLE_INTERVAL_S", "300"))
# Raw status history is kept this many days; hourly figures (DeviceStatusHour) are kept for good.
STATUS_HISTORY_RAW_DAYS = int(os.environ.get("STATUS_HISTORY_RAW_DAYS", "30"))
STATUS_FOLD_HOURS_PER_RUN = int(os.environ.get("STATUS_FOLD_HOURS_PER_RUN", "24"))
STATUS_PRUNE_BATCH = int(os.environ.get("STATUS_PRUNE_BATCH", "5000"))  # raw records deleted per transaction
# Without Redis there is no cross-process channel layer: staff sockets poll the database this often.
LIVE_POLL_INTERVAL_S = float(os.environ.get("LIVE_POLL_INTERVAL_S", "3"))
# Where admin pages open the staff socket when /ws/ is on another origin than the pages (daphne on
# WS_PORT beside gunicorn on PORT, `make run-prod`): ws://host:port or wss://host. Empty: the page's own.
LIVE_WS_ORIGIN = os.environ.get("LIVE_WS_ORIGIN", "").strip().rstrip("/")
_ws_origin = urlsplit(LIVE_WS_ORIGIN)
if LIVE_WS_ORIGIN and (
    _ws_origin.scheme not in ("ws", "wss")
    or not _ws_origin.hostname
    or any((_ws_origin.path, _ws_origin.query, _ws_origin.fragment))
):
    raise ImproperlyConfigured(
        f"LIVE_WS_ORIGIN must be ws://host[:port] or wss://host[:port], not {LIVE_WS_ORIGIN!r}"
    )

# --- Serving ---------------------------------------------------------------------------------
# Past capacity, a request that waited longer than this for a web worker (in gunicorn's listen
# backlog) is answered 503 at once instead of late (coffeeshop/shedding.py); 0 never sheds.
MAX_QUEUE_WAIT_MS = int(os.environ.get("MAX_QUEUE_WAIT_MS", "500"))

INSTALLED_APPS = [
    "daphne",  # first, so runserver serves WebSockets too
    "unfold",
    "unfold.contrib.filters",
    "unfold.contrib.forms",
    "unfold.contrib.import_export",
    "unfold.contrib.guardian",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "guardian",
    "import_export",
    "django_celery_beat",
    "django_prometheus",
    "channels",
    "axes",
    "coffeeshop",
    "accounts",
    "audit",
    "devices",
    "inventory",
    "orders",
    "recipes",
    "operations",
]

MIDDLEWARE = [
    "coffeeshop.request_id.RequestIdMiddleware",  # first: its id and duration cover every other one
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.time_zones.MerchantTimeZoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
    "audit.context.AuditContextMiddleware",
    "coffeeshop.api.errors.OutageMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "coffeeshop.urls"
WSGI_APPLICATION = "coffeeshop.wsgi.application"
ASGI_APPLICATION = "coffeeshop.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database --------------------------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'coffeeshop.sqlite3'}"
# Under WSGI (gunicorn) persistent connections are ~3.5x faster; under ASGI they leak one
# connection per thread, so the ASGI entry point sets DB_CONN_MAX_AGE=0 (see asgi.py).
DATABASES = {
    "default": dj_database_url.parse(DATABASE_URL, conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "60")))
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets the web server, worker and simulator share the file without "database is locked".
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;",
        "transaction_mode": "IMMEDIATE",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # A file, not memory, so the end-to-end tests' server process sees the test database too; one
    # file per test run, so concurrent runs never share it.
    _test_db = Path(tempfile.gettempdir()) / f"coffeeshop-test-{os.getpid()}.sqlite3"
    DATABASES["default"]["TEST"] = {"NAME": str(_test_db)}
IS_POSTGRES = DATABASES["default"]["ENGINE"].endswith("postgresql")
if IS_POSTGRES and env_bool("DB_POOL", default=False):
    # psycopg's pool, turned on by the ASGI servers (asgi.py, and manage.py for runserver): at most
    # DB_POOL_MAX_SIZE connections per process, well under PostgreSQL's 100 across processes. A request
    # that waits DB_POOL_TIMEOUT_S for one gets PoolTimeout, an OperationalError: 503 UNAVAILABLE.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": int(os.environ.get("DB_POOL_MAX_SIZE", "10")),
        "timeout": float(os.environ.get("DB_POOL_TIMEOUT_S", "5")),
    }
DATABASES["default"].setdefault("TEST", {})
# django-prometheus's engines count and time every query on /metrics (django_db_*), for some 40 µs of
# CPU a query on PostgreSQL, 17-33 on SQLite (bench/db_metrics.py); DB_METRICS=0 keeps Django's own.
METERED_ENGINES = {
    "django.db.backends.postgresql": "django_prometheus.db.backends.postgresql",
    "django.db.backends.sqlite3": "django_prometheus.db.backends.sqlite3",
}
if env_bool("DB_METRICS", default=True):
    DATABASES["default"]["ENGINE"] = METERED_ENGINES.get(
        DATABASES["default"]["ENGINE"], DATABASES["default"]["ENGINE"]
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache, throttles, Celery broker, Channels layer (all optional) ----------------------
REDIS_URL = os.environ.get("REDIS_URL", "").strip()
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", "coffeeshop"),
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            # Pub/sub: a push is one PUBLISH per group. Live pushes are at-most-once by design (a
            # machine's commands also ride on its heartbeat and pull), so the core layer's per-group
            # bookkeeping buys nothing. Reads get room beyond redis-py's 5 s default.
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, "socket_timeout": 30, "socket_connect_timeout": 5}],
                "prefix": os.environ.get("CACHE_KEY_PREFIX", "coffeeshop"),
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Celery (broker: Redis when configured, else kombu's server-less filesystem transport) ------
# A job whose worker dies is not left to the broker: its task is acknowledged late (redelivered after
# the visibility timeout, a no-op once the job finished), and the "Reclaim stalled background jobs"
# schedule gives it to another worker once it has been silent for JOB_STALE_AFTER_S. The visibility
# timeout is sized well above the longest job so that a live job is not delivered twice meanwhile.
COMMAND_BATCH_CHUNK = int(os.environ.get("COMMAND_BATCH_CHUNK", "1000"))  # commands per transaction
JOB_STALE_AFTER_S = int(os.environ.get("JOB_STALE_AFTER_S", "120"))
JOB_MAX_ATTEMPTS = int(os.environ.get("JOB_MAX_ATTEMPTS", "3"))
# The files a job stored (an export's CSV, an import's sheet and report) are deleted this many days
# after it finished, JOB_FILES_DELETE_BATCH jobs per transaction (operations.services.job_files).
JOB_FILES_KEEP_DAYS = int(os.environ.get("JOB_FILES_KEEP_DAYS", "7"))
JOB_FILES_DELETE_BATCH = int(os.environ.get("JOB_FILES_DELETE_BATCH", "200"))
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT_S", "10800"))
    }
else:
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(DATA_DIR / "celery" / "queue"),
        "data_folder_out": str(DATA_DIR / "celery" / "queue"),
        "processed_folder": str(DATA_DIR / "celery" / "processed"),
        # kombu's default is ./control, a folder in whatever directory the process started in.
        "control_folder": str(DATA_DIR / "celery" / "control"),
        "store_processed": False,
    }
    CELERY_RESULT_BACKEND = f"file://{DATA_DIR / 'celery' / 'results'}"
    for folder in ("queue", "processed", "results", "control"):
        (DATA_DIR / "celery" / folder).mkdir(parents=True, exist_ok=True)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_EXPIRES = 3600
CELERY_BEAT_SCHEDULER = "coffeeshop.beat:Scheduler"
# Beat writes each periodic task's last_run_at after every send (not every 3 minutes, its default), so
# that /api/v1/health can tell a ticking beat from a stopped one (coffeeshop/workers.py).
CELERY_BEAT_SYNC_EVERY = 1
CELERY_TIMEZONE = "UTC"
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# Where tasks are queued unless a caller names a queue: one deployment (or one test's server and worker)
# on a Redis shared with others keeps its work to itself.
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_TASK_DEFAULT_QUEUE", "celery")

# --- Auth ------------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/admin/login/"
LOGIN_REDIRECT_URL = "/admin/"
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user row; anonymous users have no merchants
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = 0.25  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_USERNAME_FORM_FIELD = "username"
AXES_ENABLED = env_bool("AXES_ENABLED", default=True)

# --- Internationalisation ---------------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
# Our catalogue first (`make messages` writes it), then translations of the packages that ship none
# for Chinese (django-unfold), kept by hand; the packages' own catalogues (Django, DRF…) come after.
LOCALE_PATHS = [BASE_DIR / "locale", BASE_DIR / "locale" / "vendor"]
TIME_ZONE = "UTC"
# A new merchant's time zone and currency until its Admin sets them (the product's first market).
MERCHANT_DEFAULT_TIME_ZONE = os.environ.get("MERCHANT_DEFAULT_TIME_ZONE", "Asia/Shanghai")
MERCHANT_DEFAULT_CURRENCY = os.environ.get("MERCHANT_DEFAULT_CURRENCY", "CNY")
USE_I18N = True
USE_TZ = True

# --- Static ----------------------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if IS_PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# In development whitenoise serves straight from the apps' static folders (daphne has no static handler).
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
MEDIA_ROOT = DATA_DIR / "media"
MEDIA_URL = "media/"

# --- API -------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["coffeeshop.api.permissions.IsStaffMember"],
    "DEFAULT_RENDERER_CLASSES": [
        "coffeeshop.api.envelope.EnvelopeJSONRenderer",
        "coffeeshop.api.envelope.EnvelopeBrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "coffeeshop.api.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "coffeeshop.api.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "coffeeshop.api.filtering.StrictFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "SEARCH_PARAM": "query",
    "EXCEPTION_HANDLER": "coffeeshop.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_CLASSES": ["coffeeshop.api.throttling.StaffUserThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        # A machine heartbeats every 30 s and sends a handful of other calls: 240/min leaves room
        # for an offline backlog upload and retries without ever throttling a healthy machine.
        "device": os.environ.get("THROTTLE_DEVICE", "240/min"),
        "register": os.environ.get("THROTTLE_REGISTER", "60/min"),
        "user": os.environ.get("THROTTLE_USER", "1200/min"),
    },
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "DATETIME_FORMAT": "iso-8601",
    "COERCE_DECIMAL_TO_STRING": True,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "coffeeshop API",
    "DESCRIPTION": "Back office and machine protocol for coffee machine fleets. "
    'Every reply is the envelope {"ok": true, "data": ...} or {"ok": false, "error": {...}}.',
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models have a `state`/`type`/`status` with different choices: name the enums apart.
    "ENUM_NAME_OVERRIDES": {
        "DeviceStateEnum": "devices.models.DeviceState",
        "CommandTypeEnum": "operations.models.CommandType",
        "CommandStatusEnum": "operations.models.CommandStatus",
        "JobStatusEnum": "operations.models.TaskJob.Status",
        "RefundStatusEnum": "orders.models.RefundStatus",
        "PaymentStatusEnum": "orders.models.PaymentStatus",
        "MaterialKindEnum": "inventory.models.MaterialKind",
        "PackageStatusEnum": "recipes.models.RecipePackage.Status",
        "RolloutStatusEnum": "recipes.models.Rollout.Status",
        "ImportedRowStatusEnum": "inventory.services.import_jobs.STATUSES",
    },
}

# --- Security --------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
DATA_UPLOAD_MAX_MEMORY_SIZE = int(os.environ.get("DATA_UPLOAD_MAX_MEMORY_SIZE", str(5 * 1024 * 1024)))
CSRF_FAILURE_VIEW = "coffeeshop.api.errors.csrf_failure"
if IS_PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    # Machines and load balancers probe health, and Prometheus scrapes, over plain HTTP inside the network.
    SECURE_REDIRECT_EXEMPT = [r"^api/v1/health$", r"^metrics$"]
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# --- Content-Security-Policy (django-csp) ------------------------------------------------------
# On in production; CSP_ENABLED=true turns it on elsewhere (the browser test runs the admin under it).
# Why each source is allowed: README, "Content-Security-Policy".
CSP_ENABLED = env_bool("CSP_ENABLED", default=IS_PRODUCTION)
CONTENT_SECURITY_POLICY = (
    {
        "DIRECTIVES": {
            "default-src": ["'self'"],
            "script-src": ["'self'", "'unsafe-eval'"],
            "style-src": ["'self'", "'unsafe-inline'"],
            "img-src": ["'self'", "data:"],
            "font-src": ["'self'"],
            # 'self' covers this origin's own ws:/wss:; a socket origin of its own must be named.
            "connect-src": ["'self'", *([LIVE_WS_ORIGIN] if LIVE_WS_ORIGIN else [])],
            "object-src": ["'none'"],
            "base-uri": ["'self'"],
            "form-action": ["'self'"],
            "frame-ancestors": ["'none'"],
        }
    }
    if CSP_ENABLED
    else None
)
if CSP_ENABLED:
    MIDDLEWARE.insert(
        MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
        "coffeeshop.csp.DocumentPolicyMiddleware",
    )
# Swagger UI from our own static files (drf-spectacular-sidecar), not a CDN the policy would refuse.
SPECTACULAR_SETTINGS.update(SWAGGER_UI_DIST="SIDECAR", SWAGGER_UI_FAVICON_HREF="SIDECAR")

# --- Prometheus ------------------------------------------------------------------------------
PROMETHEUS_EXPORT_MIGRATIONS = False

# --- Exposure: metrics and API docs ------------------------------------------------------------
# /metrics opens to "Authorization: Bearer <METRICS_TOKEN>" or to a connection from METRICS_ALLOWED_IPS
# (addresses or CIDR networks): everyone by default in development, no one in production.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "").strip()
METRICS_ALLOWED_IPS = env_list("METRICS_ALLOWED_IPS") or ([] if IS_PRODUCTION else ["0.0.0.0/0", "::/0"])
for _network in METRICS_ALLOWED_IPS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError as error:
        raise ImproperlyConfigured(f"METRICS_ALLOWED_IPS: {error}") from None
# /api/v1/docs and /api/v1/schema: anyone in development, signed-in staff in production.
API_DOCS_PUBLIC = env_bool("API_DOCS_PUBLIC", default=not IS_PRODUCTION)

# --- Logging ---------------------------------------------------------------------------------
# LOG_FORMAT=json (default in production) writes one JSON object a line; text is for reading by eye.
# Every process logs through this one handler (coffeeshop.logs): web, gunicorn, worker and beat.
LOG_FORMAT = log_format()
if LOG_FORMAT not in LOG_FORMATS:
    raise ImproperlyConfigured("LOG_FORMAT must be 'json' or 'text'")
LOGGING = logging_config(LOG_FORMAT, os.environ.get("LOG_LEVEL", "INFO"))

# --- Sales ---------------------------------------------------------------------------------
PAYMENT_GATEWAY = os.environ.get("PAYMENT_GATEWAY", "orders.payments.RecordedRefundGateway")
# Orders an export writes between two progress reports (each one also the job's heartbeat).
ORDERS_EXPORT_CHUNK = int(os.environ.get("ORDERS_EXPORT_CHUNK", "2000"))
# Rows an analytics export writes between two progress reports.
ANALYTICS_EXPORT_CHUNK = int(os.environ.get("ANALYTICS_EXPORT_CHUNK", "500"))
# The most orders one offline-backlog upload may carry (protocol: at most 500; more is 413).
ORDER_BACKLOG_LIMIT = 500
# A lone new order takes the quick lane (coffeeshop.protocol.views.quick_order); false sends every
# order through DRF, the reference the lane's differential test compares it with.
ORDER_QUICK_LANE = env_bool("ORDER_QUICK_LANE", default=True)

# --- Stock and recipes ---------------------------------------------------------------------
# Bins the forecast job (inventory.forecast_bins) takes per transaction.
BIN_FORECAST_CHUNK = int(os.environ.get("BIN_FORECAST_CHUNK", "1000"))
# The pick list (inventory.services.picklist): when on the visit day the filler arrives (local time), and
# the least a bin must take, as a share of its capacity, to be worth a line.
PICK_LIST_VISIT_TIME = os.environ.get("PICK_LIST_VISIT_TIME", "08:00")
PICK_LIST_MIN_SHARE_PCT = float(os.environ.get("PICK_LIST_MIN_SHARE_PCT", "10"))
# The consumption job (inventory.book_consumption): orders booked per transaction, how long an order
# is left to settle (its request may still be committing) before the cursor passes it, bins profiled
# per transaction and how often each bin's 7-day profile is recomputed.
CONSUMPTION_ORDER_CHUNK = int(os.environ.get("CONSUMPTION_ORDER_CHUNK", "500"))
CONSUMPTION_SETTLE_S = int(os.environ.get("CONSUMPTION_SETTLE_S", "30"))
CONSUMPTION_PROFILE_CHUNK = int(os.environ.get("CONSUMPTION_PROFILE_CHUNK", "1000"))
CONSUMPTION_PROFILE_EVERY_S = int(os.environ.get("CONSUMPTION_PROFILE_EVERY_S", "600"))
# A bin is flagged when the level's drop differs from the ledger by more than this share of the ledger,
# once the ledger expects at least CONSUMPTION_VARIANCE_MIN_SHARE of the bin's capacity.
CONSUMPTION_VARIANCE_PCT = float(os.environ.get("CONSUMPTION_VARIANCE_PCT", "15"))
CONSUMPTION_VARIANCE_MIN_SHARE = float(os.environ.get("CONSUMPTION_VARIANCE_MIN_SHARE", "0.2"))
# An offered package a machine has not installed after this long counts as a failed install.
PACKAGE_INSTALL_TIMEOUT_S = int(os.environ.get("PACKAGE_INSTALL_TIMEOUT_S", "3600"))
# Recipes a package build reads between two progress reports (each one also the job's heartbeat).
# Package files go to the default storage (STORAGES["default"], MEDIA_ROOT unless configured).
PACKAGE_BUILD_CHUNK = int(os.environ.get("PACKAGE_BUILD_CHUNK", "50"))
# A material sheet of more rows than this is imported by a background job (the admin always shows its
# preview on the job's page; the API answers 202 with the job). Uploaded sheets and their reports go to
# the default storage, under material-imports/.
MATERIAL_IMPORT_SYNC_MAX_ROWS = int(os.environ.get("MATERIAL_IMPORT_SYNC_MAX_ROWS", "1000"))
# How often a running import job reports its progress (also its sign of life), in seconds.
MATERIAL_IMPORT_BEAT_S = float(os.environ.get("MATERIAL_IMPORT_BEAT_S", "2"))

# --- Alarms --------------------------------------------------------------------------------
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "alarms@coffeeshop.local")

# --- Demo ------------------------------------------------------------------------------------
ADMIN_EMAIL = os.environ.get("ADMIN_EMAIL", "admin@example.com")

# Unfold (admin theme) settings live in their own module to keep this one readable.
from coffeeshop.unfold_settings import UNFOLD  # noqa: E402, F401
