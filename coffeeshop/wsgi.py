import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coffeeshop.settings")
application = get_wsgi_application()

from coffeeshop.checks import log_failed_checks_at_start  # noqa: E402

log_failed_checks_at_start()
