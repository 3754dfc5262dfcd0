"""Sales in the back office: each role reads its merchant's orders and nothing else, Ops refund and
handle exceptions through the same services as the API, and the CSV export holds exactly the rows the
filtered list shows."""

import csv
import zoneinfo
from datetime import datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from operations.models import TaskJob
from orders.models import Order, PaymentMethod, PaymentStatus, Refund
from orders.services import refund_order, run_orders_export
from orders.services.export import COLUMNS
from tests.factories import DeviceFactory, LocationFactory, OrderFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_passwords")]

# What merchant B owns; none of these strings may reach a user of merchant A.
B_SECRETS = ["Other Beans", "Secret Loft", "CM2K-B00001", "Rival Corner", "B-SECRET-1", "wx-secret"]
ROLES = [Role.ADMIN, Role.OPS, Role.VIEWER]


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def sales(merchant, other_merchant):
    """Brew Co (A): a paid 18.00 latte and an unpaid cash sale on two machines. Other Beans (B): one sale."""
    a_location = LocationFactory(merchant=merchant, name="Harbour Hall")
    b_location = LocationFactory(merchant=other_merchant, name="Secret Loft")
    lobby = DeviceFactory(merchant=merchant, location=a_location, serial="CM2K-A00001", alias="Lobby A")
    station = DeviceFactory(merchant=merchant, location=a_location, serial="CM2K-A00002")
    rival = DeviceFactory(
        merchant=other_merchant, location=b_location, serial="CM2K-B00001", alias="Rival Corner"
    )
    return SimpleNamespace(
        lobby=lobby,
        station=station,
        paid=OrderFactory(device=lobby, machine_order_id="A-0001", transaction_id="wx-a0001"),
        cash=OrderFactory(
            device=station,
            machine_order_id="A-0002",
            payment_method="cash",
            payment_status=PaymentStatus.UNPAID,
            transaction_id="",
        ),
        foreign=OrderFactory(device=rival, machine_order_id="B-SECRET-1", transaction_id="wx-secret"),
    )


@pytest.fixture
def login(make_user, merchant):
    """login(role, platform=False) -> a client signed in as a fresh user of Brew Co (or platform staff)."""

    def make(role, platform=False):
        user = make_user(role, is_platform_staff=True) if platform else make_user(role, merchants=[merchant])
        client = Client()
        client.force_login(user)
        client.user = user
        return client

    return make


def url(obj, view="change"):
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_{view}", args=[obj.pk])


CHANGELIST = "/admin/orders/order/"
EXPORT = "/admin/orders/order/export/"


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def refund_form(**fields):
    return {"_form_submitted": "True", **fields}


# --- Reading ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_each_role_reads_only_its_merchants_orders(login, sales, role):
    client = login(role)

    changelist = client.get(CHANGELIST)
    page = client.get(url(sales.paid))
    methods = client.get(reverse("admin:orders_paymentmethod_changelist"))

    assert (changelist.status_code, page.status_code, methods.status_code) == (200, 200, 200)
    assert changelist.context["cl"].result_count == 2
    listed = changelist.content.decode()
    assert "A-0001" in listed and "A-0002" in listed and "Harbour Hall" in listed
    detail = page.content.decode()
    assert "wx-a0001" in detail and "Latte" in detail
    for content in (listed, detail):
        assert not [secret for secret in B_SECRETS if secret in content]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("view", ["change", "history", "refund", "mark_as_exception"])
def test_another_merchants_order_answers_like_a_missing_one(login, sales, role, view):
    client = login(role)
    foreign_url = url(sales.foreign, view)

    foreign = client.get(foreign_url, follow=True)
    missing = client.get(foreign_url.replace(f"/{sales.foreign.pk}/", "/987654/"), follow=True)

    assert (foreign.status_code, foreign.redirect_chain) == (missing.status_code, missing.redirect_chain)
    assert not [secret for secret in B_SECRETS if secret in foreign.content.decode()]


def test_platform_staff_read_every_merchants_orders(login, sales):
    response = login(Role.VIEWER, platform=True).get(CHANGELIST)

    assert response.context["cl"].result_count == 3


def test_the_list_filters_offer_only_the_merchants_locations_and_machines(login, sales):
    content = login(Role.ADMIN).get(CHANGELIST).content.decode()

    assert "Lobby A" in content and "CM2K-A00002" in content and "Harbour Hall" in content
    assert not [secret for secret in B_SECRETS if secret in content]


def test_filtering_by_another_merchants_machine_shows_nothing(login, sales):
    response = login(Role.ADMIN).get(CHANGELIST, {"device__id__exact": sales.foreign.device_id})

    assert response.context["cl"].result_count == 0


def test_orders_are_found_by_order_id_transaction_id_or_machine_serial(login, sales):
    client = login(Role.VIEWER)

    found = {
        term: [o.machine_order_id for o in client.get(CHANGELIST, {"q": term}).context["cl"].result_list]
        for term in ("A-0002", "wx-a0001", "CM2K-A00001", "wx-secret")
    }

    assert found == {"A-0002": ["A-0002"], "wx-a0001": ["A-0001"], "CM2K-A00001": ["A-0001"], "wx-secret": []}


def test_machine_reported_fields_are_read_only_for_everyone(login, sales):
    client = login(Role.ADMIN, platform=True)

    page = client.get(url(sales.paid)).content.decode()
    post = client.post(url(sales.paid), {"total": "1.00", "payment_status": "refunded"})

    assert 'name="_save"' not in page and 'name="total"' not in page
    assert post.status_code == 403
    assert Order.objects.get(pk=sales.paid.pk).total == Decimal("18.00")


def test_the_order_list_costs_the_same_queries_for_3_and_30_orders(login, sales):
    client = login(Role.OPS)
    OrderFactory(device=sales.lobby)
    client.get(CHANGELIST)  # warm caches (content types, sessions)
    with CaptureQueriesContext(connection) as few:
        assert client.get(CHANGELIST).context["cl"].result_count == 3
    OrderFactory.create_batch(14, device=sales.lobby)
    OrderFactory.create_batch(13, device=sales.station)
    with CaptureQueriesContext(connection) as many:
        assert client.get(CHANGELIST).context["cl"].result_count == 30

    assert len(many) == len(few)


# --- Refunds ------------------------------------------------------------------------------------------


def test_a_viewer_gets_no_actions_and_cannot_refund(login, sales):
    client = login(Role.VIEWER)

    page = client.get(url(sales.paid)).content.decode()
    post = client.post(url(sales.paid, "refund"), refund_form(amount="5.00", reason="try"))

    for action in ("refund", "mark_as_exception", "resolve_the_exception"):
        assert url(sales.paid, action) not in page
    assert post.status_code == 403
    assert not Refund.objects.exists()
    paid = Order.objects.get(pk=sales.paid.pk)
    assert (paid.payment_status, paid.refunded_total) == (PaymentStatus.PAID, Decimal("0.00"))


def test_ops_see_the_refund_dialog_with_what_is_left(login, sales):
    client = login(Role.OPS)

    page = client.get(url(sales.paid)).content.decode()
    dialog = client.get(url(sales.paid, "refund")).content.decode()

    assert url(sales.paid, "refund") in page
    assert "Left to refund" in dialog and "18.00 CNY" in dialog
    assert 'name="amount"' in dialog and 'name="reason"' in dialog


def test_the_order_page_offers_the_actions_that_fit_the_orders_state(login, sales):
    client = login(Role.OPS)
    sales.cash.is_exception = True
    sales.cash.save()

    paid = client.get(url(sales.paid)).content.decode()
    unpaid_exception = client.get(url(sales.cash)).content.decode()

    assert url(sales.paid, "refund") in paid and url(sales.paid, "mark_as_exception") in paid
    assert url(sales.paid, "resolve_the_exception") not in paid
    assert url(sales.cash, "refund") not in unpaid_exception
    assert url(sales.cash, "resolve_the_exception") in unpaid_exception
    assert url(sales.cash, "mark_as_exception") not in unpaid_exception


def test_ops_refund_part_of_an_order_through_the_admin(login, sales):
    client = login(Role.OPS)

    response = client.post(
        url(sales.paid, "refund"),
        refund_form(amount="10.00", reason="Drink came out cold"),
        headers={"HX-Request": "true"},
    )
    page = client.get(response["HX-Redirect"])

    assert response["HX-Redirect"] == url(sales.paid)
    assert messages_of(page) == ["Refunded 10.00 CNY of order A-0001."]
    refund = Refund.objects.get()
    assert (refund.order_id, refund.amount, refund.reason, refund.created_by) == (
        sales.paid.pk,
        Decimal("10.00"),
        "Drink came out cold",
        client.user,
    )
    paid = Order.objects.get(pk=sales.paid.pk)
    assert (paid.payment_status, paid.refunded_total) == (PaymentStatus.PARTIALLY_REFUNDED, Decimal("10.00"))
    content = page.content.decode()
    assert "Partially refunded" in content and "Drink came out cold" in content


def test_a_refund_over_what_is_left_shows_the_error_and_changes_nothing(login, sales):
    client = login(Role.OPS)
    refund_order(sales.paid.pk, user=client.user, reason="first", amount=Decimal("10.00"))

    response = client.post(url(sales.paid, "refund"), refund_form(amount="9.00", reason="again"))

    assert response.status_code == 200
    assert "Only 8.00 is left to refund." in response.content.decode()
    assert Refund.objects.count() == 1
    paid = Order.objects.get(pk=sales.paid.pk)
    assert (paid.payment_status, paid.refunded_total) == (PaymentStatus.PARTIALLY_REFUNDED, Decimal("10.00"))


def test_a_refund_without_an_amount_refunds_what_is_left(login, sales):
    client = login(Role.OPS)
    refund_order(sales.paid.pk, user=client.user, reason="first", amount=Decimal("10.00"))

    response = client.post(url(sales.paid, "refund"), refund_form(reason="the rest"), follow=True)

    assert messages_of(response) == ["Refunded 8.00 CNY of order A-0001."]
    paid = Order.objects.get(pk=sales.paid.pk)
    assert (paid.payment_status, paid.refunded_total) == (PaymentStatus.REFUNDED, Decimal("18.00"))


@pytest.mark.parametrize(
    ("order", "fields", "error"),
    [
        ("paid", {"amount": "5.00"}, "This field is required."),
        (
            "cash",
            {"amount": "5.00", "reason": "nope"},
            "Only a paid order can be refunded (this one is Unpaid).",
        ),
        ("paid", {"amount": "0", "reason": "zero"}, "The amount must be positive."),
    ],
)
def test_a_refused_refund_says_why_and_records_nothing(login, sales, order, fields, error):
    response = login(Role.OPS).post(url(getattr(sales, order), "refund"), refund_form(**fields))

    assert response.status_code == 200
    assert error in response.content.decode()
    assert not Refund.objects.exists()


def test_ops_cannot_refund_another_merchants_order(login, sales):
    response = login(Role.OPS).post(url(sales.foreign, "refund"), refund_form(amount="1.00", reason="x"))

    assert response.status_code == 404
    assert not Refund.objects.exists()


# --- Exceptions ---------------------------------------------------------------------------------------


def test_ops_mark_an_order_as_exception_and_resolve_it(login, sales):
    client = login(Role.OPS)

    marked = client.post(
        url(sales.paid, "mark_as_exception"), {"_form_submitted": "True", "reason": "No cup"}, follow=True
    )
    queue = client.get(CHANGELIST, {"is_exception__exact": "1"})
    resolved = client.post(
        url(sales.paid, "resolve_the_exception"),
        {"_form_submitted": "True", "resolution": "Refunded in cash"},
        follow=True,
    )

    assert messages_of(marked) == ["Order A-0001 is in the exception queue."]
    assert [o.machine_order_id for o in queue.context["cl"].result_list] == ["A-0001"]
    assert messages_of(resolved) == ["The exception of order A-0001 is resolved."]
    order = Order.objects.get(pk=sales.paid.pk)
    assert not order.is_exception
    assert (order.exception_reason, order.exception_marked_by) == ("No cup", client.user)
    assert (order.exception_resolution, order.exception_resolved_by) == ("Refunded in cash", client.user)


def test_resolving_an_order_that_is_no_exception_is_refused(login, sales):
    response = login(Role.OPS).post(
        url(sales.paid, "resolve_the_exception"), {"_form_submitted": "True", "resolution": "?"}
    )

    assert "This order is not an open exception." in response.content.decode()
    assert Order.objects.get(pk=sales.paid.pk).exception_resolved_at is None


def test_the_exception_queue_is_in_the_sidebar(login, sales):
    content = login(Role.VIEWER).get(reverse("admin:index")).content.decode()

    assert f"{CHANGELIST}?is_exception__exact=1" in content


# --- Export of the filtered list -----------------------------------------------------------------------


def download_rows(client, job) -> list[list[str]]:
    response = client.get(reverse("admin:operations_taskjob_download", args=[job.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    return list(csv.reader(b"".join(response.streaming_content).decode("utf-8-sig").splitlines()))


@pytest.mark.parametrize("role", ROLES)
def test_the_export_holds_exactly_the_filtered_list(login, sales, role):
    zone = zoneinfo.ZoneInfo(sales.lobby.merchant.time_zone)  # the month is the merchant's, as the page says
    today = timezone.localtime(timezone.now(), zone)
    OrderFactory(device=sales.lobby, machine_order_id="A-OLD", received_at=today - timedelta(days=400))
    OrderFactory(device=sales.station, machine_order_id="A-0003")
    client = login(role)
    query = (
        f"payment_status__exact=paid&location__id__exact={sales.lobby.location_id}"
        f"&received_at__year={today.year}&received_at__month={today.month}&o=-2&p=1"
    )
    shown = {o.machine_order_id for o in client.get(f"{CHANGELIST}?{query}").context["cl"].queryset}

    response = client.post(f"{EXPORT}?{query}")

    job = TaskJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:operations_taskjob_change", args=[job.pk])
    start = datetime(today.year, today.month, 1, tzinfo=zone)
    end = datetime(today.year + today.month // 12, today.month % 12 + 1, 1, tzinfo=zone)
    assert job.params == {
        "payment_status": "paid",
        "location": str(sales.lobby.location_id),
        "from": start.isoformat(),
        "to": end.isoformat(),
    }
    assert (job.created_by, job.kind) == (client.user, TaskJob.Kind.ORDERS_EXPORT)
    run_orders_export(job.pk)
    rows = download_rows(client, job)
    assert rows[0] == COLUMNS
    assert {row[1] for row in rows[1:]} == shown == {"A-0001", "A-0003"}


def test_an_export_of_the_exception_queue_maps_the_admin_filters(login, sales):
    client = login(Role.ADMIN)
    query = (
        f"is_exception__exact=1&is_test__exact=0&device__id__exact={sales.lobby.pk}"
        f"&merchant__id__exact={sales.lobby.merchant_id}&payment_method=wechat"
    )

    client.post(f"{EXPORT}?{query}")

    assert TaskJob.objects.get().params == {
        "exception": "true",
        "is_test": "false",
        "device_id": str(sales.lobby.pk),
        "merchant_id": str(sales.lobby.merchant_id),
        "payment_method": "wechat",
    }


def test_an_export_is_refused_while_a_search_narrows_the_list(login, sales):
    response = login(Role.OPS).post(f"{EXPORT}?q=A-0001&payment_status__exact=paid", follow=True)

    assert not TaskJob.objects.exists()
    assert "clear the search" in messages_of(response)[0]
    assert response.redirect_chain[-1][0] == f"{CHANGELIST}?q=A-0001&payment_status__exact=paid"


def test_an_export_of_another_merchants_machine_holds_nothing_of_theirs(login, sales):
    client = login(Role.VIEWER)

    client.post(f"{EXPORT}?device__id__exact={sales.foreign.device_id}")
    job = TaskJob.objects.get()
    run_orders_export(job.pk)

    assert download_rows(client, job) == [COLUMNS]


def test_an_export_is_a_post(login, sales):
    assert login(Role.VIEWER).get(EXPORT).status_code == 405
    assert not TaskJob.objects.exists()


def test_someone_elses_export_answers_like_a_missing_one(login, sales):
    owner, other = login(Role.ADMIN), login(Role.ADMIN)
    owner.post(EXPORT)
    job = TaskJob.objects.get()
    run_orders_export(job.pk)

    for name in ("operations_taskjob_download", "operations_taskjob_status", "operations_taskjob_change"):
        mine = owner.get(reverse(f"admin:{name}", args=[job.pk]))
        theirs = other.get(reverse(f"admin:{name}", args=[job.pk]))
        missing = other.get(reverse(f"admin:{name}", args=[987654]))
        assert mine.status_code == 200, name
        assert theirs.status_code == missing.status_code != 200, name


def test_an_action_on_something_that_is_not_an_order_id_answers_not_found(login, sales):
    response = login(Role.OPS).post("/admin/orders/order/not-a-number/refund/", refund_form(reason="x"))

    assert response.status_code == 404


# --- Payment methods ---------------------------------------------------------------------------------


def test_a_merchant_admin_defines_a_payment_method_for_their_merchant_only(login, merchant, other_merchant):
    PaymentMethod.objects.create(merchant=other_merchant, code="rival_card", name="Rival Card")
    client = login(Role.ADMIN)

    listing = client.get(reverse("admin:orders_paymentmethod_changelist"))
    added = client.post(
        reverse("admin:orders_paymentmethod_add"),
        {"merchant": other_merchant.pk, "code": "meal_card", "name": "Meal card"},
    )
    client.post(
        reverse("admin:orders_paymentmethod_add"),
        {"merchant": merchant.pk, "code": "meal_card", "name": "Meal card"},
    )

    assert "Rival Card" not in listing.content.decode()
    assert added.status_code == 200  # the form again: another merchant is not a choice
    assert list(PaymentMethod.objects.filter(code="meal_card").values_list("merchant", flat=True)) == [
        merchant.pk
    ]


def test_a_code_the_merchant_already_takes_is_refused_in_the_form(login, merchant):
    PaymentMethod.objects.create(merchant=merchant, code="meal_card", name="Meal card")
    client = login(Role.ADMIN)

    again = client.post(
        reverse("admin:orders_paymentmethod_add"),
        {"merchant": merchant.pk, "code": "meal_card", "name": "Again"},
    )

    assert again.status_code == 200
    assert "already exists" in again.content.decode()
    assert PaymentMethod.objects.filter(code="meal_card").count() == 1


@pytest.mark.parametrize("role", [Role.OPS, Role.VIEWER])
def test_ops_and_viewers_cannot_define_payment_methods(login, merchant, role):
    client = login(role)

    reply = client.post(
        reverse("admin:orders_paymentmethod_add"),
        {"merchant": merchant.pk, "code": "meal_card", "name": "Meal card"},
    )

    assert reply.status_code == 403
    assert not PaymentMethod.objects.exists()


def test_the_payment_method_filter_names_built_in_and_own_methods_only(
    login, merchant, other_merchant, sales
):
    PaymentMethod.objects.create(merchant=merchant, code="meal_card", name="Meal card")
    PaymentMethod.objects.create(merchant=other_merchant, code="rival_card", name="Rival Card")
    client = login(Role.VIEWER)

    page = client.get(reverse("admin:orders_order_changelist")).content.decode()

    assert "Meal card" in page and "WeChat Pay" in page
    assert "Rival Card" not in page


def test_orders_show_payment_methods_by_name(login, merchant, other_merchant, sales):
    """Built-in methods and the merchant's own by their names; one it never defined as the machine sent it."""
    PaymentMethod.objects.create(merchant=merchant, code="meal_card", name="Meal card")
    PaymentMethod.objects.create(merchant=other_merchant, code="meal_card", name="Rival Card")
    own = OrderFactory(device=sales.lobby, machine_order_id="A-0003", payment_method="meal_card")
    OrderFactory(device=sales.lobby, machine_order_id="A-0004", payment_method="mystery_pay")
    client = login(Role.VIEWER)

    listing = client.get(CHANGELIST, {"device__id__exact": sales.lobby.pk})
    shown = {o.machine_order_id: o for o in listing.context["cl"].result_list}
    admin = listing.context["cl"].model_admin

    assert {k: admin.payment_method_label(o) for k, o in shown.items()} == {
        "A-0001": "WeChat Pay",
        "A-0003": "Meal card",
        "A-0004": "mystery_pay",
    }
    assert "Meal card" in client.get(url(own)).content.decode()
