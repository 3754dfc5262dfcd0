from channels.auth import AuthMiddlewareStack
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from coffeeshop.protocol.consumers import MachineSocketConsumer
from devices.consumers import StaffLiveConsumer

# Staff sockets ride on the admin session, so they check the Origin (no cross-site hijacking);
# machines authenticate with their token, which a browser page cannot set on a WebSocket.
websocket_urlpatterns = [
    path("ws/live/", AllowedHostsOriginValidator(AuthMiddlewareStack(StaffLiveConsumer.as_asgi()))),
    path("ws/devices/<str:device_id>/", MachineSocketConsumer.as_asgi()),
]
