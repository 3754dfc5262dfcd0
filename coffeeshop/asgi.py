"""ASGI entry point: HTTP and WebSockets (daphne). Production serves HTTP with gunicorn (wsgi.py),
which costs ~5x less CPU per request, and WebSockets with daphne on this application."""

import os

# Under ASGI every request runs in a new thread: persistent connections would leak, so use a pool.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coffeeshop.settings")
os.environ.setdefault("DB_CONN_MAX_AGE", "0")
os.environ.setdefault("DB_POOL", "1")

from django.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()

from coffeeshop.checks import log_failed_checks_at_start  # noqa: E402

log_failed_checks_at_start()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from coffeeshop.routing import websocket_urlpatterns  # noqa: E402
from coffeeshop.socket_logs import SocketRequestIdMiddleware  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": SocketRequestIdMiddleware(URLRouter(websocket_urlpatterns)),
    }
)
