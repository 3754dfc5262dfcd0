"""The admin's home page is the dashboard (UNFOLD["DASHBOARD_CALLBACK"]): the figures of
`operations.dashboard`, the same selector as `GET /api/v1/dashboard/summary`, drawn with unfold's
cards, charts (its own Chart.js, no CDN) and tables, filtered by range, merchant and location. live.js
refreshes the figures from the API as orders, machine states and alarms arrive on the staff socket."""

import json
from datetime import date

from django import forms
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _

from accounts.models import Capability, Merchant
from accounts.selectors import merchants_for
from coffeeshop.admin_base import user_can
from coffeeshop.exceptions import Invalid
from devices.models import Location
from operations.dashboard import dashboard_summary, scope_for

CURRENCY_COLOURS = ["var(--color-primary-600)", "var(--color-primary-300)", "#f59e0b", "#10b981"]


class DashboardFilterForm(forms.Form):
    start = forms.DateField(label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    merchant = forms.ModelChoiceField(label=_("Merchant"), queryset=Merchant.objects.none(), required=False)
    location = forms.ModelChoiceField(label=_("Location"), queryset=Location.objects.none(), required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["merchant"].queryset = merchants_for(user).order_by("name")
        self.fields["location"].queryset = Location.objects.for_user(user).order_by("name")
        for field in self.fields.values():
            field.widget.attrs.setdefault("class", "cs-dashboard-input")


def chart_of(rows, key: str, labels: list, value="amount") -> str:
    """Chart.js data: one dataset per currency over `labels` (missing buckets are 0, not invented)."""
    currencies = sorted({row["currency"] for row in rows})
    by = {(row[key], row["currency"]): float(row[value]) for row in rows}
    return json.dumps(
        {
            "labels": [str(label) for label in labels],
            "datasets": [
                {
                    "label": currency,
                    "data": [by.get((label, currency), 0) for label in labels],
                    "backgroundColor": CURRENCY_COLOURS[n % len(CURRENCY_COLOURS)],
                }
                for n, currency in enumerate(currencies)
            ],
        }
    )


def _days(first: date, last: date) -> list[str]:
    return [date.fromordinal(d).isoformat() for d in range(first.toordinal(), last.toordinal() + 1)]


def online_chart(rows) -> str:
    return json.dumps(
        {
            "labels": [row["date"] for row in rows],
            "datasets": [
                {
                    "label": str(_("Online rate (%)")),
                    "data": [round(100 * row["online_rate"], 1) for row in rows],
                    "borderColor": "var(--color-primary-600)",
                    "suffixYAxis": "%",
                    "displayYAxis": True,
                }
            ],
        }
    )


def table_of(headers, rows) -> dict:
    return {"headers": headers, "rows": rows}


def scope_of_form(request, form: DashboardFilterForm):
    """The scope the filter form asks for; the default one, with the form saying why, when it cannot be."""
    given = form.cleaned_data if form.is_valid() else {}
    merchant, location = given.get("merchant"), given.get("location")
    try:
        return scope_for(
            request.user,
            first_day=given.get("start"),
            last_day=given.get("end"),
            merchant_id=merchant.pk if merchant else None,
            location_id=location.pk if location else None,
        )
    except Invalid as error:
        form.add_error(None, error.message)
        return scope_for(request.user)


def dashboard_callback(request, context):
    if not user_can(request.user, Capability.VIEW):
        return context
    form = DashboardFilterForm(request.GET or None, user=request.user)
    scope = scope_of_form(request, form)
    figures = dashboard_summary(scope)
    query = {"from": figures["from"], "to": figures["to"]}
    if scope.merchant_id:
        query["merchant_id"] = scope.merchant_id
    if scope.location_id:
        query["location"] = scope.location_id
    context.update(
        {
            "dashboard": figures,
            "dashboard_form": form,
            "dashboard_api": f"{reverse('dashboard-summary')}?{urlencode(query)}",
            "sales_per_day_chart": chart_of(
                figures["sales_per_day"], "date", _days(scope.first_day, scope.last_day)
            ),
            "sales_per_hour_chart": chart_of(figures["sales_per_hour"], "hour", list(range(24))),
            "online_rate_chart": online_chart(figures["online_rate_per_day"]),
            "top_products_table": table_of(
                [_("product"), _("quantity"), _("amount")],
                [[p["name"], p["qty"], f"{p['amount']} {p['currency']}"] for p in figures["top_products"]],
            ),
            "top_machines_table": table_of(
                [_("machine"), _("orders"), _("sales")],
                [[m["name"], m["orders"], f"{m['amount']} {m['currency']}"] for m in figures["top_machines"]],
            ),
            "silent_machines_table": table_of(
                [_("machine"), _("online")],
                [
                    [m["name"], _("Online") if m["is_online"] else _("Offline")]
                    for m in figures["silent_machines"]
                ],
            ),
        }
    )
    return context
