from django.urls import path

from devices.consumers import StaffLiveConsumer

websocket_urlpatterns = [
    path("ws/live/", StaffLiveConsumer.as_asgi()),
]
