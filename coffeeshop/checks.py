"""System checks of the frame: what makes a production start fail later if nobody says so now.

Not tagged `staticfiles` on purpose: `collectstatic` runs only the checks with that tag, and it must
still run while these fail.
"""

import ipaddress
import logging

from django.conf import settings
from django.contrib.staticfiles.finders import get_finders
from django.contrib.staticfiles.storage import ManifestFilesMixin
from django.core.checks import Error, Warning, register
from django.core.files.storage import storages

COLLECTSTATIC = "python manage.py collectstatic --noinput"
IGNORED = ["CVS", ".*", "*~"]  # collectstatic's defaults


@register(deploy=True)
def static_files_collected(app_configs, **kwargs):
    """With a manifest storage (production), a page naming a file the manifest lacks is a 500.

    A deployment check: every management command runs the ordinary checks, and `init-db` or
    `create-user` must not refuse to run before `collectstatic` (the servers log it at start)."""
    storage = storages["staticfiles"]
    if not isinstance(storage, ManifestFilesMixin):
        return []
    hint = f"Run `{COLLECTSTATIC}` before starting the servers."
    if not storage.manifest_storage.exists(storage.manifest_name):
        return [
            Error(
                f"Static files have not been collected: {storage.manifest_name} is missing in "
                f"STATIC_ROOT ({storage.location}), so every admin page answers 500.",
                hint=hint,
                id="coffeeshop.E001",
            )
        ]
    collected, _hash = storage.load_manifest()
    missing = sorted(
        {path for finder in get_finders() for path, _ in finder.list(IGNORED) if path not in collected}
    )
    if missing:
        return [
            Error(
                f"Static files not collected since the code changed ({len(missing)} missing in STATIC_ROOT), "
                f"so the pages that use them answer 500: {', '.join(missing[:5])}"
                + (", …" if len(missing) > 5 else "")
                + ".",
                hint=hint,
                id="coffeeshop.E002",
            )
        ]
    return []


@register(deploy=True)
def metrics_and_docs_not_public(app_configs, **kwargs):
    warnings = []
    if any(
        ipaddress.ip_network(network, strict=False).prefixlen == 0 for network in settings.METRICS_ALLOWED_IPS
    ):
        warnings.append(
            Warning(
                "METRICS_ALLOWED_IPS lets every address read /metrics, which carries business figures.",
                hint="List the scraper's addresses, or set METRICS_TOKEN instead.",
                id="coffeeshop.W001",
            )
        )
    if settings.API_DOCS_PUBLIC:
        warnings.append(
            Warning(
                "API_DOCS_PUBLIC shows the API's docs and schema to anonymous visitors.",
                hint="Unset API_DOCS_PUBLIC: signed-in staff still read them.",
                id="coffeeshop.W002",
            )
        )
    return warnings


def log_failed_checks_at_start() -> None:
    """gunicorn and daphne run no system checks: say what would break, plainly, in their log.

    The server still starts: machines speak the protocol without static files, only the admin needs them.
    """
    for error in static_files_collected(None):
        logging.getLogger("coffeeshop").error("%s %s (%s)", error.msg, error.hint, error.id)
