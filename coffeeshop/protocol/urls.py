from django.urls import path

from coffeeshop.protocol import views

urlpatterns = [
    path("devices/register", views.RegisterView.as_view(), name="device-register"),
    path("devices/<str:device_id>/status", views.HeartbeatView.as_view(), name="device-heartbeat"),
    path(
        "devices/<str:device_id>/commands/pending",
        views.PendingCommandsView.as_view(),
        name="device-commands-pending",
    ),
    path(
        "devices/<str:device_id>/commands/<uuid:command_id>/result",
        views.CommandResultView.as_view(),
        name="device-command-result",
    ),
    path(
        "devices/<str:device_id>/orders/create", views.OrdersCreateView.as_view(), name="device-orders-create"
    ),
    path(
        "devices/<str:device_id>/materials/report",
        views.MaterialsReportView.as_view(),
        name="device-materials-report",
    ),
    path(
        "devices/<str:device_id>/packages/<str:package_id>",
        views.PackageDownloadView.as_view(),
        name="device-package",
    ),
]
