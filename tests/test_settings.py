"""Settings come from the environment: development runs with nothing set, production refuses to guess."""

import json
import os
import secrets
import string
import subprocess
import sys
import time
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent


def random_secret_key() -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits + "!@#%^&*(-_=+)") for _ in range(50))


@pytest.fixture
def run_django(tmp_path):
    """run_django(*args, **env) -> a finished `python <args>` in the project, with only the given environment.

    Nothing of this test process's environment leaks in (no DATABASE_URL, REDIS_URL, DJANGO_SETTINGS_MODULE),
    and the SQLite file of the default configuration goes to a temporary folder.
    """

    def run(*args, **env):
        environ = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", str(tmp_path)),
            "COFFEESHOP_DATA_DIR": str(tmp_path),
            "PYTHONDONTWRITEBYTECODE": "1",
            **env,
        }
        return subprocess.run(
            [sys.executable, *args],
            cwd=BASE_DIR,
            env=environ,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    return run


def settings_value(run_django, expression: str, **env):
    """The value of `expression` (over `settings`) in a freshly started Django with only `env` set."""
    code = (
        "import json, os, django; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'coffeeshop.settings'); "
        f"django.setup(); from django.conf import settings; print(json.dumps({expression}))"
    )
    result = run_django("-c", code, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_production_refuses_to_start_without_a_secret_key(run_django):
    result = run_django("manage.py", "check", DJANGO_ENV="production", ALLOWED_HOSTS="example.com")

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY must be set" in result.stderr


def test_production_refuses_to_start_without_allowed_hosts(run_django):
    result = run_django("manage.py", "check", DJANGO_ENV="production", SECRET_KEY=random_secret_key())

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "ALLOWED_HOSTS must be set" in result.stderr


def test_an_unknown_django_env_is_refused(run_django):
    result = run_django("manage.py", "check", DJANGO_ENV="staging")

    assert result.returncode != 0
    assert "DJANGO_ENV must be" in result.stderr


def production_env(**extra) -> dict:
    return {
        "DJANGO_ENV": "production",
        "SECRET_KEY": random_secret_key(),
        "ALLOWED_HOSTS": "example.com",
        **extra,
    }


def test_production_passes_check_deploy_with_no_warning(run_django):
    collected = run_django("manage.py", "collectstatic", "--noinput", **production_env())
    assert collected.returncode == 0, collected.stderr

    result = run_django(
        "manage.py",
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_ENV="production",
        SECRET_KEY=random_secret_key(),
        ALLOWED_HOSTS="example.com",
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_fails_when_device_tokens_are_disabled(run_django):
    result = run_django(
        "manage.py",
        "check",
        "--deploy",
        DJANGO_ENV="production",
        SECRET_KEY=random_secret_key(),
        ALLOWED_HOSTS="example.com",
        ENABLE_DEVICE_TOKEN="false",
    )

    assert result.returncode != 0
    assert "devices.E001" in result.stderr


@pytest.mark.parametrize(
    ("opening", "check_id"),
    [
        ({"METRICS_ALLOWED_IPS": "0.0.0.0/0"}, "coffeeshop.W001"),
        ({"API_DOCS_PUBLIC": "true"}, "coffeeshop.W002"),
    ],
)
def test_check_deploy_warns_when_metrics_or_docs_are_opened_to_everyone(run_django, opening, check_id):
    result = run_django(
        "manage.py", "check", "--deploy", "--fail-level", "WARNING", **production_env(**opening)
    )

    assert result.returncode != 0
    assert check_id in result.stderr


def test_production_turns_debug_off_by_default(run_django):
    debug = settings_value(
        run_django,
        "settings.DEBUG",
        DJANGO_ENV="production",
        SECRET_KEY=random_secret_key(),
        ALLOWED_HOSTS="example.com",
    )

    assert debug is False


def test_development_starts_with_nothing_set(run_django):
    result = run_django("manage.py", "check")

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_default_database_is_an_sqlite_file_in_the_data_folder(run_django, tmp_path):
    engine, name = settings_value(
        run_django, "[settings.DATABASES['default'][key] for key in ('ENGINE', 'NAME')]"
    )

    assert engine == "django_prometheus.db.backends.sqlite3"  # its queries counted on /metrics
    assert Path(name) == tmp_path / "coffeeshop.sqlite3"


def test_database_url_selects_postgresql(run_django):
    engine = settings_value(
        run_django,
        "settings.DATABASES['default']['ENGINE']",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/coffeeshop",
    )

    assert engine == "django_prometheus.db.backends.postgresql"


@pytest.mark.parametrize(
    ("database_url", "engine"),
    [("", "django.db.backends.sqlite3"), ("postgres://127.0.0.1/c", "django.db.backends.postgresql")],
)
def test_db_metrics_off_keeps_djangos_own_engines(run_django, database_url, engine):
    value = settings_value(
        run_django, "settings.DATABASES['default']['ENGINE']", DATABASE_URL=database_url, DB_METRICS="0"
    )

    assert value == engine


def test_without_redis_url_nothing_needs_redis(run_django):
    backends = settings_value(
        run_django,
        "[settings.CACHES['default']['BACKEND'], "
        "settings.CHANNEL_LAYERS['default']['BACKEND'], settings.CELERY_BROKER_URL]",
    )

    assert backends == [
        "django.core.cache.backends.locmem.LocMemCache",
        "channels.layers.InMemoryChannelLayer",
        "filesystem://",
    ]


def test_production_check_says_plainly_that_static_files_are_not_collected(run_django):
    env = production_env()

    before = run_django("manage.py", "check", "--deploy", **env)
    collected = run_django("manage.py", "collectstatic", "--noinput", **env)
    after = run_django("manage.py", "check", "--deploy", "--fail-level", "WARNING", **env)

    assert before.returncode != 0
    assert "coffeeshop.E001" in before.stderr
    assert "Static files have not been collected" in before.stderr
    assert "python manage.py collectstatic --noinput" in before.stderr
    assert collected.returncode == 0, collected.stderr  # the check does not stand in its way
    assert after.returncode == 0, after.stdout + after.stderr
    assert "System check identified no issues" in after.stdout


def test_init_db_runs_in_production_before_collectstatic(run_django):
    """The static-files check is a deployment check: commands that need no static files still run."""
    result = run_django("manage.py", "init-db", **production_env())

    assert result.returncode == 0, result.stdout + result.stderr


def test_production_check_names_static_files_added_since_collectstatic(run_django, tmp_path):
    env = production_env()
    assert run_django("manage.py", "collectstatic", "--noinput", **env).returncode == 0
    newer = tmp_path / "newer-static"
    (newer / "coffeeshop").mkdir(parents=True)
    (newer / "coffeeshop" / "added-later.js").write_text("// shipped with a later release\n")
    code = (
        "import os, django; os.environ['DJANGO_SETTINGS_MODULE'] = 'coffeeshop.settings'; django.setup(); "
        f"from django.conf import settings; settings.STATICFILES_DIRS.append({str(newer)!r}); "
        "from django.core.management import call_command; call_command('check', deploy=True)"
    )

    result = run_django("-c", code, **env)

    assert result.returncode != 0
    assert "coffeeshop.E002" in result.stderr
    assert "coffeeshop/added-later.js" in result.stderr
    assert "python manage.py collectstatic --noinput" in result.stderr


def test_gunicorn_in_production_logs_that_static_files_are_not_collected(tmp_path):
    log = tmp_path / "gunicorn.log"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "COFFEESHOP_DATA_DIR": str(tmp_path),
        **production_env(),
    }
    with log.open("w") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "coffeeshop.wsgi", "--workers", "1", "--bind", "127.0.0.1:0"],
            cwd=BASE_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while "coffeeshop.E001" not in log.read_text() and time.monotonic() < deadline:
            assert server.poll() is None, log.read_text()
            time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=30)

    text = log.read_text()
    assert "Static files have not been collected" in text
    assert "python manage.py collectstatic --noinput" in text


def anonymous_replies(run_django, paths, headers=None, scheme="https", **env) -> list[dict]:
    """What an anonymous request to each of `paths` answers in a fresh Django with only `env` set: its
    status and Content-Security-Policy header."""
    code = (
        "import json, os, django; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'coffeeshop.settings'); "
        "django.setup(); from django.test import Client; "
        f"client = Client(SERVER_NAME='example.com', headers={headers or {}!r}); "
        f"secure = {scheme == 'https'!r}; "
        f"replies = [client.get(path, secure=secure) for path in {paths!r}]; "
        "print(json.dumps([{'status': r.status_code, 'csp': r.get('Content-Security-Policy')} "
        "for r in replies]))"
    )
    result = run_django("-c", code, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def anonymous_status_codes(run_django, paths, headers=None, scheme="https", **env) -> list[int]:
    return [reply["status"] for reply in anonymous_replies(run_django, paths, headers, scheme, **env)]


def test_production_closes_metrics_docs_and_schema_to_anonymous_requests(run_django):
    codes = anonymous_status_codes(
        run_django, ["/metrics", "/api/v1/schema", "/api/v1/docs"], **production_env()
    )

    assert codes == [403, 401, 302]


def test_production_opens_metrics_to_the_configured_bearer_token(run_django):
    token = secrets.token_urlsafe(32)
    env = production_env(METRICS_TOKEN=token)

    with_token = anonymous_status_codes(run_django, ["/metrics"], {"authorization": f"Bearer {token}"}, **env)
    inside_the_network = anonymous_status_codes(
        run_django, ["/metrics"], {"authorization": f"Bearer {token}"}, scheme="http", **env
    )
    without = anonymous_status_codes(run_django, ["/metrics"], **env)

    assert (with_token, inside_the_network, without) == ([200], [200], [403])


def test_production_opens_metrics_to_the_configured_addresses(run_django):
    allowed = settings_value(
        run_django,
        "settings.METRICS_ALLOWED_IPS",
        **production_env(METRICS_ALLOWED_IPS="10.0.0.0/8, 127.0.0.1"),
    )
    codes = anonymous_status_codes(
        run_django, ["/metrics"], **production_env(METRICS_ALLOWED_IPS="127.0.0.1")
    )

    assert allowed == ["10.0.0.0/8", "127.0.0.1"]
    assert codes == [200]  # the test client's REMOTE_ADDR


def test_development_leaves_metrics_docs_and_schema_open(run_django):
    codes = anonymous_status_codes(
        run_django, ["/metrics", "/api/v1/schema", "/api/v1/docs"], ALLOWED_HOSTS="example.com"
    )

    assert codes == [200, 200, 200]


def test_a_malformed_metrics_address_is_refused_at_start(run_django):
    result = run_django("manage.py", "check", **production_env(METRICS_ALLOWED_IPS="10.0.0.0/33"))

    assert result.returncode != 0
    assert "METRICS_ALLOWED_IPS" in result.stderr


def test_production_sends_the_content_security_policy(run_django):
    (reply,) = anonymous_replies(run_django, ["/api/v1/docs"], **production_env())

    directives = dict(part.strip().split(" ", 1) for part in reply["csp"].split(";"))
    assert directives["script-src"] == "'self' 'unsafe-eval'"  # no 'unsafe-inline' for scripts
    assert directives["connect-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"


def test_the_policy_lets_pages_reach_a_socket_origin_of_its_own(run_django):
    (reply,) = anonymous_replies(
        run_django, ["/api/v1/docs"], **production_env(LIVE_WS_ORIGIN="wss://live.example.com/")
    )

    directives = dict(part.strip().split(" ", 1) for part in reply["csp"].split(";"))
    assert directives["connect-src"] == "'self' wss://live.example.com"


def test_a_socket_origin_that_is_not_a_websocket_origin_is_refused_at_start(run_django):
    for wrong in ("https://live.example.com", "ws://live.example.com/ws/live/", "live.example.com"):
        result = run_django("manage.py", "check", **production_env(LIVE_WS_ORIGIN=wrong))

        assert result.returncode != 0, wrong
        assert "LIVE_WS_ORIGIN must be ws://host[:port] or wss://host[:port]" in result.stderr, wrong


def test_json_replies_carry_no_policy_and_documents_do(run_django):
    """A browser never renders JSON (nosniff): machines' replies skip the cost of the header."""
    json_reply, document = anonymous_replies(
        run_django, ["/api/v1/health", "/api/v1/docs"], **production_env()
    )

    assert json_reply["csp"] is None
    assert "default-src 'self'" in document["csp"]


def test_development_sends_no_content_security_policy_unless_asked(run_django):
    development = {"ALLOWED_HOSTS": "example.com"}
    (default,) = anonymous_replies(run_django, ["/api/v1/docs"], **development)
    (asked,) = anonymous_replies(run_django, ["/api/v1/docs"], **development, CSP_ENABLED="true")

    assert default["csp"] is None
    assert "script-src 'self' 'unsafe-eval'" in asked["csp"]


LOG_A_LINE = (
    "import os, django, logging; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'coffeeshop.settings'); "
    "django.setup(); logging.getLogger('coffeeshop').warning('machine %s is late', 'CM-1')"
)


def test_log_format_json_writes_one_json_object_a_line(run_django):
    result = run_django("-c", LOG_A_LINE, LOG_FORMAT="json")
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stderr.strip().splitlines()[-1])
    expected = ("WARNING", "coffeeshop", "machine CM-1 is late")
    assert (line["level"], line["logger"], line["message"]) == expected


def test_development_logs_readable_text_by_default(run_django):
    result = run_django("-c", LOG_A_LINE)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith("WARNING coffeeshop machine CM-1 is late")


def test_an_unknown_log_format_is_refused(run_django):
    result = run_django("manage.py", "check", LOG_FORMAT="xml")
    assert result.returncode != 0
    assert "LOG_FORMAT must be 'json' or 'text'" in result.stderr
