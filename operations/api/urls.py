from django.urls import path
from rest_framework.routers import SimpleRouter

from operations.api import views
from operations.api.analytics import AnalyticsExportView, AnalyticsSalesView, AnalyticsUptimeView
from operations.api.dashboard import DashboardSummaryView

router = SimpleRouter(trailing_slash=False)
router.register("jobs", views.TaskJobViewSet, basename="job")
router.register("commands/batches", views.CommandBatchViewSet, basename="command-batch")
router.register("commands", views.CommandViewSet, basename="command")
router.register("alarms", views.AlarmViewSet, basename="alarm")
urlpatterns = [
    path("analytics/sales", AnalyticsSalesView.as_view(), name="analytics-sales"),
    path("analytics/uptime", AnalyticsUptimeView.as_view(), name="analytics-uptime"),
    path("analytics/exports", AnalyticsExportView.as_view(), name="analytics-exports"),
    path("dashboard/summary", DashboardSummaryView.as_view(), name="dashboard-summary"),
    path("devices/<int:device_id>/commands", views.DeviceCommandsView.as_view(), name="device-commands"),
    *router.urls,
]
