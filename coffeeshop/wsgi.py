"""WSGI entry point (gunicorn, production HTTP): the application behind the load shedder, which
answers 503 at once to requests that waited too long for a worker (coffeeshop/shedding.py)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coffeeshop.settings")
django_application = get_wsgi_application()

from coffeeshop.shedding import shed_when_overloaded  # noqa: E402  (needs the settings loaded)

application = shed_when_overloaded(django_application)
