"""Operations → Analytics (/admin/analytics/): sales by one dimension, or machine uptime per day, as a
table and a chart (unfold's components), filtered like the dashboard, and exported to CSV or XLSX by a
background job whose page shows its progress and offers the file."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.dates import WEEKDAYS
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from accounts.models import Capability
from coffeeshop.admin_base import user_can
from coffeeshop.exceptions import DomainError
from operations.admin.common import admin_url
from operations.admin.dashboard import DashboardFilterForm, chart_of, online_chart, scope_of_form, table_of
from operations.analytics import DIMENSIONS, dimension_labels, report_header, sales_by, uptime_per_day
from operations.models import TaskJob
from operations.services.analytics_export import start_analytics_export
from operations.tasks import export_analytics

UPTIME = "uptime"
VIEWS = (*DIMENSIONS, UPTIME)


class AnalyticsFilterForm(DashboardFilterForm):
    view = forms.ChoiceField(choices=[(v, v) for v in VIEWS], required=False, widget=forms.HiddenInput)


def _chart_labels(dimension: str, rows: list[dict]) -> list[str]:
    """The chart's buckets: every hour and weekday (an hour without a sale is 0), else the rows' own."""
    if dimension == "hour":
        return [f"{hour:02d}:00" for hour in range(24)]
    if dimension == "weekday":
        return [str(WEEKDAYS[day]) for day in range(7)]
    return list(dict.fromkeys(row["label"] for row in rows))


def _sales_context(scope, dimension: str) -> dict:
    rows = sales_by(scope, dimension)
    count = "qty" if dimension == "product" else "orders"
    count_title = _("quantity") if count == "qty" else _("orders")
    return {
        "rows": rows,
        "chart": chart_of(rows, "label", _chart_labels(dimension, rows)),
        "table": table_of(
            [dimension_labels()[dimension], _("currency"), count_title, _("amount")],
            [[r["label"], r["currency"], r[count], r["amount"]] for r in rows],
        ),
    }


def _uptime_context(scope) -> dict:
    uptime = uptime_per_day(scope)
    fleet = uptime["fleet"]
    return {
        "rows": uptime["machines"],
        "chart": online_chart([{"date": r["date"], "online_rate": r["uptime_pct"] / 100} for r in fleet]),
        "fleet_table": table_of([_("day"), _("uptime (%)")], [[r["date"], r["uptime_pct"]] for r in fleet]),
        "table": table_of(
            [_("day"), _("machine"), _("uptime (%)")],
            [[r["date"], r["label"], r["uptime_pct"]] for r in uptime["machines"]],
        ),
    }


def _chosen_view(form: AnalyticsFilterForm) -> str:
    chosen = form.cleaned_data.get("view") if form.is_valid() else None
    return chosen or DIMENSIONS[0]


def _query_without_view(request) -> dict:
    return {key: value for key, value in request.GET.items() if key != "view"}


def analytics_view(request):
    if not user_can(request.user, Capability.VIEW):
        raise PermissionDenied
    form = AnalyticsFilterForm(request.GET or None, user=request.user)
    scope = scope_of_form(request, form)
    chosen = _chosen_view(form)
    figures = _uptime_context(scope) if chosen == UPTIME else _sales_context(scope, chosen)
    filters = _query_without_view(request)
    names = {**dimension_labels(), UPTIME: _("Uptime per day")}
    context = {
        **admin.site.each_context(request),
        "title": _("Analytics"),
        "form": form,
        "chosen": chosen,
        "tabs": [
            {"view": view, "title": names[view], "url": "?" + urlencode({**filters, "view": view})}
            for view in VIEWS
        ],
        "header": report_header(scope),
        "export_url": f"{reverse('analytics-export')}?{request.GET.urlencode()}",
        **figures,
    }
    return TemplateResponse(request, "admin/operations/analytics.html", context)


@require_POST
def export_view(request):
    """Start the export of what the page shows (its filters are the query string) and open its job."""
    if not user_can(request.user, Capability.VIEW):
        raise PermissionDenied
    form = AnalyticsFilterForm(request.GET or None, user=request.user)
    scope = scope_of_form(request, form)
    chosen = _chosen_view(form)
    back = HttpResponseRedirect(f"{reverse('analytics')}?{request.GET.urlencode()}")
    if form.errors:
        messages.error(request, " ".join(form.non_field_errors()) or _("Invalid filter."))
        return back
    try:
        job = start_analytics_export(
            request.user,
            report=UPTIME if chosen == UPTIME else "sales",
            dimension=None if chosen == UPTIME else chosen,
            file_format=request.POST.get("format", "csv"),
            first_day=scope.first_day,
            last_day=scope.last_day,
            merchant_id=scope.merchant_id,
            location_id=scope.location_id,
            enqueue=export_analytics.delay,
        )
    except DomainError as error:
        messages.error(request, error.message)
        return back
    messages.success(
        request,
        _("The export has started; this page shows its progress and offers the file when it is ready."),
    )
    return HttpResponseRedirect(admin_url(TaskJob, "change", job.pk))


urlpatterns = [
    path("", admin.site.admin_view(analytics_view), name="analytics"),
    path("export/", admin.site.admin_view(export_view), name="analytics-export"),
]
