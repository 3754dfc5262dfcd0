"""The back office as each role sees it: every page opens, nothing of another merchant ever shows, and
only the roles allowed to change something can."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django_celery_beat.models import PeriodicTask

from accounts.models import Merchant, Role, User
from accounts.services import grant_merchant_access
from accounts.tenancy import can_access_merchant
from devices.models import DeviceCredential
from devices.services import identify_device
from inventory.models import Material
from tests.factories import (
    DeviceBinFactory,
    DeviceFactory,
    DeviceStatusHistoryFactory,
    LocationFactory,
    MerchantFactory,
)

pytestmark = pytest.mark.django_db

# What merchant B owns; none of these strings may ever reach a user of merchant A.
B_SECRETS = [
    "Other Beans",
    "CM2K-B00001",
    "Rival Corner",
    "Secret Loft",
    "Secretville",
    "rival@otherbeans.example",
]

ROLES = [
    pytest.param(Role.ADMIN, False, id="merchant-admin"),
    pytest.param(Role.OPS, False, id="merchant-ops"),
    pytest.param(Role.VIEWER, False, id="merchant-viewer"),
    pytest.param(Role.ADMIN, True, id="platform-admin"),
    pytest.param(Role.OPS, True, id="platform-ops"),
    pytest.param(Role.VIEWER, True, id="platform-viewer"),
]


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    """Users are made by the dozen here; the production hasher would spend most of the run hashing."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def fleet(merchant, other_merchant, materials, make_user):
    """Merchant A ("Brew Co") and merchant B ("Other Beans"), each with a location, a machine with bins and
    a day of history, and a user."""
    a_location = LocationFactory(merchant=merchant, name="Harbour Hall", city="Shanghai")
    b_location = LocationFactory(merchant=other_merchant, name="Secret Loft", city="Secretville")
    a_device = DeviceFactory(
        merchant=merchant, location=a_location, serial="CM2K-A00001", alias="Lobby A", temperature_c=92.4
    )
    b_device = DeviceFactory(
        merchant=other_merchant,
        location=b_location,
        serial="CM2K-B00001",
        alias="Rival Corner",
        is_online=False,
    )
    for device in (a_device, b_device):
        DeviceBinFactory(device=device, index=1, material_code="BEAN-ARABICA", remaining=800, level_pct=80)
        DeviceBinFactory(device=device, index=2, material_code="MILK-POWDER", remaining=50, level_pct=5)
        DeviceStatusHistoryFactory(device=device, temperature_c=91.5)
        DeviceStatusHistoryFactory(device=device, temperature_c=93.0, event="state_changed", state="brewing")
    return {
        "a": merchant,
        "b": other_merchant,
        "a_location": a_location,
        "b_location": b_location,
        "a_device": a_device,
        "b_device": b_device,
        "a_colleague": make_user(Role.VIEWER, merchants=[merchant], email="colleague@brewco.example"),
        "b_user": make_user(Role.ADMIN, merchants=[other_merchant], email="rival@otherbeans.example"),
    }


@pytest.fixture
def login(make_user, fleet):
    """login(role, platform=False, merchants=None) -> a client signed in as a fresh user of merchant A."""

    def make(role, platform=False, merchants=None):
        if platform:
            user = make_user(role, is_platform_staff=True)
        else:
            user = make_user(role, merchants=merchants or [fleet["a"]])
        client = Client()
        client.force_login(user)
        client.user = user
        return client

    return make


def change_url(obj, view="change"):
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_{view}", args=[obj.pk])


def device_form(device, **changes):
    """The POST of a machine's change page: the editable settings and the bins inline."""
    bins = list(device.bins.order_by("index"))
    data = {
        "alias": device.alias,
        "location": device.location_id or "",
        "offline_timeout_s": device.offline_timeout_s or "",
        "bins-TOTAL_FORMS": len(bins),
        "bins-INITIAL_FORMS": len(bins),
        "bins-MIN_NUM_FORMS": 0,
        "bins-MAX_NUM_FORMS": 1000,
    }
    for i, bin_ in enumerate(bins):
        data.update(
            {
                f"bins-{i}-id": bin_.pk,
                f"bins-{i}-device": device.pk,
                f"bins-{i}-low_threshold_pct": bin_.low_threshold_pct,
            }
        )
    data.update(changes)
    return data


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# --- Every page opens for every role, or refuses plainly --------------------------------------------


@pytest.mark.parametrize(("role", "platform"), ROLES)
def test_every_admin_page_opens_for_each_role_or_is_refused(login, fleet, role, platform):
    client = login(role, platform)
    is_admin, writes_materials = role == Role.ADMIN, role in (Role.ADMIN, Role.OPS)
    settings_admin = is_admin and platform
    task = PeriodicTask.objects.first()
    expected = {
        reverse("admin:index"): True,
        reverse("admin:devices_device_changelist"): True,
        reverse("admin:devices_location_changelist"): True,
        reverse("admin:inventory_material_changelist"): True,
        reverse("admin:accounts_merchant_changelist"): True,
        reverse("admin:accounts_user_changelist"): True,
        change_url(fleet["a_device"]): True,
        change_url(fleet["a_device"], "history"): True,
        change_url(fleet["a_location"]): True,
        change_url(Material.objects.get(code="SUGAR")): True,
        change_url(fleet["a"]): True,
        change_url(fleet["a_colleague"]): True,
        reverse("admin:devices_device_add"): False,
        reverse("admin:devices_location_add"): is_admin,
        reverse("admin:inventory_material_add"): writes_materials,
        reverse("admin:inventory_material_import"): writes_materials,
        reverse("admin:inventory_material_export"): True,
        reverse("admin:accounts_merchant_add"): settings_admin,
        reverse("admin:accounts_user_add"): is_admin,
        reverse("admin:auth_user_password_change", args=[fleet["a_colleague"].pk]): is_admin,
        reverse("admin:django_celery_beat_periodictask_changelist"): settings_admin,
        reverse("admin:django_celery_beat_periodictask_add"): settings_admin,
        change_url(task): settings_admin,
        reverse("admin:django_celery_beat_intervalschedule_changelist"): settings_admin,
        reverse("admin:django_celery_beat_crontabschedule_changelist"): settings_admin,
        reverse("admin:django_celery_beat_solarschedule_changelist"): settings_admin,
        reverse("admin:django_celery_beat_clockedschedule_changelist"): settings_admin,
        reverse("admin:django_celery_beat_clockedschedule_add"): settings_admin,
    }
    if task.interval_id:
        expected[change_url(task.interval)] = settings_admin

    statuses = {url: client.get(url).status_code for url in expected}

    assert statuses == {url: 200 if allowed else 403 for url, allowed in expected.items()}


def test_the_device_page_shows_live_status_chart_and_history(login, fleet):
    page = login(Role.VIEWER).get(change_url(fleet["a_device"]))

    content = page.content.decode()
    device = fleet["a_device"]
    assert f'data-device-id="{device.pk}" data-live="online"' in content
    assert re.search(rf'data-device-id="{device.pk}" data-live="temperature"[^>]*>92.4 °C<', content)
    assert 'data-chart="temperature"' in content and "91.5" in content
    assert "Recent status history" in content and "State changed" in content
    assert "MILK-POWDER" in content
    assert 'id="coffeeshop-live-labels"' in content


def test_the_device_page_tells_the_machines_story_each_part_linked_to_its_list(login, fleet):
    from operations.models import Alarm, AlarmType, Severity
    from operations.services import alarms, commands
    from tests.factories import OrderFactory

    device, rival = fleet["a_device"], fleet["b_device"]
    for n in range(12):
        OrderFactory(device=device, machine_order_id=f"A-{n:04d}", payment_method="alipay")
    OrderFactory(device=rival, machine_order_id="B-SECRET")
    commands.send_command(device, "clean", {"program": "rinse"}, user=fleet["a_colleague"])
    hot, _ = alarms.open_or_bump_alarm(
        device, AlarmType.TEMPERATURE_OUT_OF_RANGE, Severity.WARNING, message="Hot"
    )
    gone, _ = alarms.open_or_bump_alarm(device, AlarmType.OFFLINE, Severity.CRITICAL, message="Gone quiet")
    alarms.clear_alarm_by_hand(gone, user=None, reason="Back")
    alarms.open_or_bump_alarm(rival, AlarmType.OFFLINE, Severity.CRITICAL, message="Secret alarm")
    client = login(Role.VIEWER)

    content = client.get(change_url(device)).content.decode()

    assert "Last orders" in content and "A-0011" in content and "A-0001" not in content  # the ten latest
    assert "Alipay" in content and "B-SECRET" not in content
    assert "Latest commands" in content and "Clean" in content
    assert "Open alarms" in content and "Hot" in content and "Gone quiet" not in content
    for changelist in ("orders/order", "operations/remotecommand", "operations/alarm"):
        link = f"/admin/{changelist}/?device__id__exact={device.pk}"
        assert link in content
        assert client.get(link).status_code == 200
    listed = client.get(f"/admin/operations/alarm/?device__id__exact={device.pk}").context["cl"].result_list
    assert [a.pk for a in listed] == [hot.pk] and Alarm.objects.filter(device=rival).exists()


def test_the_device_list_marks_each_live_value_for_the_live_script(login, fleet, merchant):
    offline = DeviceFactory(merchant=merchant, serial="CM2K-A00002", is_online=False, state="fault")

    content = login(Role.VIEWER).get(reverse("admin:devices_device_changelist")).content.decode()

    online = fleet["a_device"]
    assert re.search(
        rf'data-device-id="{online.pk}" data-live="online" data-online="true"[^>]*>Online<', content
    )
    assert re.search(
        rf'data-device-id="{offline.pk}" data-live="online" data-online="false"[^>]*>Offline<', content
    )
    assert re.search(rf'data-device-id="{offline.pk}" data-live="state" data-state="fault">Fault<', content)
    for field in ("last_seen", "bins"):
        assert f'data-device-id="{online.pk}" data-live="{field}"' in content
    assert 'data-low="true" title="#2 MILK-POWDER 5% (50/1000 g)"' in content
    assert 'id="coffeeshop-live-labels"' in content and '"fault": "Fault"' in content


def test_an_out_of_range_temperature_is_marked_in_the_list_and_on_the_machine_page(login, fleet, merchant):
    hot = DeviceFactory(merchant=merchant, serial="CM2K-A00003", temperature_c=104.5)
    client = login(Role.VIEWER)

    listing = client.get(reverse("admin:devices_device_changelist")).content.decode()
    page = client.get(change_url(hot)).content.decode()

    for content in (listing, page):
        assert re.search(rf'data-device-id="{hot.pk}" data-live="temperature" data-in-range="false"', content)
    normal = fleet["a_device"]
    assert re.search(rf'data-device-id="{normal.pk}" data-live="temperature" data-in-range="true"', listing)


def test_an_empty_fleet_says_how_machines_join(login, fleet, make_user):
    from accounts.models import Merchant

    newcomer = Merchant.objects.create(name="Empty Beans")
    client = Client()
    client.force_login(make_user(Role.ADMIN, merchants=[newcomer]))

    empty = client.get(reverse("admin:devices_device_changelist")).content.decode()
    filtered = login(Role.VIEWER).get(reverse("admin:devices_device_changelist"), {"q": "no-such-machine"})

    assert "No machines yet" in empty and "/api/v1/devices/register" in empty
    assert "Create a new item" not in empty
    assert "No machines yet" not in filtered.content.decode()  # a search that finds nothing says so


def test_the_device_list_costs_the_same_queries_for_many_machines(login, fleet, merchant):
    client = login(Role.OPS)
    url = reverse("admin:devices_device_changelist")
    client.get(url)  # warm caches (content types, sessions)
    with CaptureQueriesContext(connection) as few:
        assert client.get(url).status_code == 200
    for _ in range(6):
        device = DeviceFactory(merchant=merchant, location=fleet["a_location"])
        DeviceBinFactory(device=device, index=1)
        DeviceBinFactory(device=device, index=2)
    with CaptureQueriesContext(connection) as many:
        assert client.get(url).status_code == 200

    assert len(many) == len(few)


# --- Tenancy: merchant A never meets merchant B -------------------------------------------------------


@pytest.mark.parametrize("role", [Role.ADMIN, Role.VIEWER])
def test_a_merchant_user_lists_only_their_merchants_things(login, fleet, role):
    client = login(role)
    lists = {
        "admin:devices_device_changelist": "CM2K-A00001",
        "admin:devices_location_changelist": "Harbour Hall",
        "admin:accounts_merchant_changelist": "Brew Co",
        "admin:accounts_user_changelist": "colleague@brewco.example",
        "admin:index": "coffeeshop",
    }
    for name, own in lists.items():
        response = client.get(reverse(name))
        content = response.content.decode()
        assert own in content, name
        assert not [secret for secret in B_SECRETS if secret in content], name
    devices = client.get(reverse("admin:devices_device_changelist"))
    assert devices.context["cl"].full_result_count == 1
    assert "1 / 1 online" in devices.content.decode()


def test_platform_staff_see_every_merchant(login, fleet):
    content = (
        login(Role.VIEWER, platform=True).get(reverse("admin:devices_device_changelist")).content.decode()
    )

    assert "CM2K-A00001" in content and "CM2K-B00001" in content
    assert "1 / 2 online" in content


@pytest.mark.parametrize("role", [Role.ADMIN, Role.OPS, Role.VIEWER])
@pytest.mark.parametrize("what", ["b_device", "b_location", "b", "b_user"])
@pytest.mark.parametrize("view", ["change", "history", "delete"])
def test_another_merchants_object_by_id_answers_like_a_missing_one(login, fleet, role, what, view):
    client = login(role)
    obj = fleet[what]
    missing_url = change_url(obj, view).replace(f"/{obj.pk}/", "/987654/")

    foreign = client.get(change_url(obj, view), follow=True)
    missing = client.get(missing_url, follow=True)

    content = foreign.content.decode()
    assert (foreign.status_code, foreign.redirect_chain) == (missing.status_code, missing.redirect_chain)
    if view != "delete":  # the delete page refuses roles that may not delete before looking the object up
        assert foreign.redirect_chain == [(reverse("admin:index"), 302)]
        assert "doesn\u2019t exist" in content
    assert not [secret for secret in B_SECRETS if secret in content]


def test_ops_cannot_act_on_another_merchants_machine(login, fleet):
    b_device = fleet["b_device"]
    active_before = DeviceCredential.objects.filter(device=b_device, revoked_at__isnull=True).count()

    response = login(Role.OPS).post(change_url(b_device, "rotate_token"), {"_form_submitted": "True"})

    assert response.status_code == 404
    assert DeviceCredential.objects.filter(device=b_device, revoked_at__isnull=True).count() == active_before


def test_list_filters_offer_only_visible_merchants_and_locations(login, fleet, merchant):
    third = MerchantFactory(name="Third Cup")
    LocationFactory(merchant=third, name="Canal Kiosk", city="Suzhou")
    DeviceFactory(merchant=third, serial="CM2K-C00001")
    client = login(Role.ADMIN, merchants=[merchant, third])

    for name in (
        "admin:devices_device_changelist",
        "admin:devices_location_changelist",
        "admin:accounts_user_changelist",
    ):
        content = client.get(reverse(name)).content.decode()
        assert "Brew Co" in content and "Third Cup" in content, name
        assert not [secret for secret in B_SECRETS if secret in content], name
    devices = client.get(reverse("admin:devices_device_changelist")).content.decode()
    assert "Harbour Hall" in devices and "Canal Kiosk" in devices
    new_location = client.get(reverse("admin:devices_location_add")).content.decode()
    assert "Brew Co" in new_location and "Third Cup" in new_location
    assert "Other Beans" not in new_location


def test_filtering_by_another_merchant_shows_nothing(login, fleet, merchant):
    client = login(Role.ADMIN, merchants=[merchant, MerchantFactory(name="Third Cup")])
    b_id = fleet["b"].pk

    devices = client.get(reverse("admin:devices_device_changelist"), {"merchant__id__exact": b_id})
    users = client.get(reverse("admin:accounts_user_changelist"), {"merchant": b_id})

    assert devices.context["cl"].result_count == 0
    assert users.context["cl"].result_count == 0


@pytest.mark.parametrize(
    ("model", "field"), [("device", "location"), ("device", "merchant"), ("location", "merchant")]
)
def test_autocomplete_offers_only_visible_merchants_and_locations(login, fleet, model, field):
    response = login(Role.ADMIN).get(
        reverse("admin:autocomplete"), {"app_label": "devices", "model_name": model, "field_name": field}
    )

    names = {result["text"] for result in response.json()["results"]}
    assert names == {"Harbour Hall"} if field == "location" else names == {"Brew Co"}


def test_a_machine_can_only_be_moved_to_a_location_of_its_merchant(login, fleet, merchant):
    third = MerchantFactory(name="Third Cup")
    LocationFactory(merchant=third, name="Canal Kiosk")
    client = login(Role.OPS, merchants=[merchant, third])
    device = fleet["a_device"]

    page = client.get(change_url(device)).content.decode()
    response = client.post(change_url(device), device_form(device, location=fleet["b_location"].pk))

    assert "Harbour Hall" in page
    assert "Canal Kiosk" not in page and "Secret Loft" not in page
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["location"]
    device.refresh_from_db()
    assert device.location == fleet["a_location"]


def test_a_merchant_cannot_guess_a_provisioning_secret_through_list_lookups(login, fleet):
    secret = fleet["a"].provisioning_secret

    response = login(Role.VIEWER).get(
        reverse("admin:accounts_merchant_changelist"), {"provisioning_secret__startswith": secret[:1]}
    )

    assert response.status_code == 400


def test_the_fleet_counter_counts_only_the_users_machines(login, fleet):
    counts = login(Role.VIEWER).get(reverse("admin:devices_device_fleet_counts")).json()

    assert counts == {"total": 1, "online": 1, "offline": 0, "fault": 0}


def test_pages_tell_live_js_the_socket_origin_when_ws_is_served_apart(login, fleet, settings):
    client = login(Role.VIEWER)
    assert 'data-socket-origin=""' in client.get(change_url(fleet["a_device"])).content.decode()

    settings.LIVE_WS_ORIGIN = "wss://live.example.com"
    content = client.get(change_url(fleet["a_device"])).content.decode()

    assert 'data-socket-origin="wss://live.example.com"' in content


# --- Who may change what ------------------------------------------------------------------------------


def test_a_viewer_reads_but_cannot_change_or_act(login, fleet):
    client = login(Role.VIEWER)
    device = fleet["a_device"]

    page = client.get(change_url(device))
    changelist = client.get(reverse("admin:devices_device_changelist"))
    post = client.post(change_url(device), device_form(device, alias="Renamed"))
    rotate = client.post(change_url(device, "rotate_token"), {"_form_submitted": "True"})

    content = page.content.decode()
    assert "rotate_token" not in content and "revoke_token" not in content
    assert 'name="_save"' not in content
    assert changelist.context["action_form"] is None
    assert post.status_code == 403 and rotate.status_code == 403
    device.refresh_from_db()
    assert device.alias == "Lobby A"
    assert DeviceCredential.objects.filter(device=device).count() == 0


def test_ops_change_only_a_machines_settings_not_its_bins(login, fleet, merchant):
    device = fleet["a_device"]
    second_location = LocationFactory(merchant=merchant, name="Station Kiosk")
    data = device_form(
        device,
        alias="Front desk",
        location=second_location.pk,
        offline_timeout_s=120,
        serial="HACKED",
        temperature_c="10",
        **{"bins-1-low_threshold_pct": 30, "bins-1-remaining": 1000},
    )

    response = login(Role.OPS).post(change_url(device), data)

    assert response.status_code == 302
    device.refresh_from_db()
    assert (device.alias, device.location, device.offline_timeout_s) == ("Front desk", second_location, 120)
    assert (device.serial, device.temperature_c) == ("CM2K-A00001", 92.4)
    milk = device.bins.get(index=2)
    assert (milk.low_threshold_pct, milk.remaining) == (15, 50)  # the bin page changes thresholds


def test_ops_rotate_a_token_and_see_it_once(login, registered):
    device, old_token = registered.device, registered.token
    client = login(Role.OPS)

    response = client.post(
        change_url(device, "rotate_token"), {"_form_submitted": "True"}, headers={"HX-Request": "true"}
    )
    page = client.get(response["HX-Redirect"])
    again = client.get(change_url(device))

    assert response["HX-Redirect"] == change_url(device)
    [message] = messages_of(page)
    new_token = re.search(r"<code[^>]*>([\w-]+)</code>", message).group(1)
    assert identify_device(new_token).device_id == device.pk
    assert identify_device(old_token) is None
    assert DeviceCredential.objects.filter(device=device, revoked_at__isnull=True).count() == 1
    assert new_token not in again.content.decode()


def test_ops_revoke_a_machines_token(login, registered):
    response = login(Role.OPS).post(
        change_url(registered.device, "revoke_token"), {"_form_submitted": "True"}, follow=True
    )

    assert messages_of(response) == [f"Revoked 1 token of {registered.device}."]
    assert identify_device(registered.token) is None


def test_an_admin_rotates_the_provisioning_secret(login, fleet):
    merchant = fleet["a"]
    old_secret = merchant.provisioning_secret
    client = login(Role.ADMIN)

    response = client.post(
        change_url(merchant, "rotate_provisioning_secret"), {"_form_submitted": "True"}, follow=True
    )

    merchant.refresh_from_db()
    assert merchant.provisioning_secret != old_secret
    assert merchant.provisioning_secret in response.content.decode()
    assert "new provisioning secret" in messages_of(response)[0]


@pytest.mark.parametrize("role", [Role.OPS, Role.VIEWER])
def test_only_admins_see_or_rotate_the_provisioning_secret(login, fleet, role):
    merchant = fleet["a"]
    client = login(role)

    page = client.get(change_url(merchant)).content.decode()
    rotate = client.post(change_url(merchant, "rotate_provisioning_secret"), {"_form_submitted": "True"})

    assert merchant.provisioning_secret not in page
    assert "rotate_provisioning_secret" not in page
    assert rotate.status_code == 403
    assert Merchant.objects.get(pk=merchant.pk).provisioning_secret == merchant.provisioning_secret


# --- Users and memberships ----------------------------------------------------------------------------


def new_user_form(email, merchants, **extra):
    return {
        "email": email,
        "name": "New Person",
        "role": Role.OPS,
        "merchants": [m.pk for m in merchants],
        "password1": "Fresh-Passw0rd!",
        "password2": "Fresh-Passw0rd!",
        **extra,
    }


def test_an_admin_adds_a_user_to_their_merchant(login, fleet):
    response = login(Role.ADMIN).post(
        reverse("admin:accounts_user_add"),
        new_user_form("New@BrewCo.example", [fleet["a"]], is_platform_staff="on"),
    )

    assert response.status_code == 302
    user = User.objects.get(email="new@brewco.example")
    assert user.role == Role.OPS and user.check_password("Fresh-Passw0rd!")
    assert can_access_merchant(user, fleet["a"].pk) and not can_access_merchant(user, fleet["b"].pk)
    assert not user.is_platform_staff


def test_an_admin_cannot_grant_a_merchant_they_do_not_have(login, fleet):
    response = login(Role.ADMIN).post(
        reverse("admin:accounts_user_add"), new_user_form("sneaky@brewco.example", [fleet["a"], fleet["b"]])
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["merchants"]
    assert not User.objects.filter(email="sneaky@brewco.example").exists()


def test_platform_staff_make_platform_staff(login):
    response = login(Role.ADMIN, platform=True).post(
        reverse("admin:accounts_user_add"), new_user_form("ops@platform.example", [], is_platform_staff="on")
    )

    assert response.status_code == 302
    assert User.objects.get(email="ops@platform.example").is_platform_staff


def test_an_admin_changes_memberships_within_their_merchants(login, fleet, merchant):
    third = MerchantFactory(name="Third Cup")
    colleague = fleet["a_colleague"]
    client = login(Role.ADMIN, merchants=[merchant, third])
    data = {
        "email": colleague.email,
        "name": colleague.name,
        "role": Role.OPS,
        "merchants": [third.pk],
        "is_active": "on",
    }

    response = client.post(change_url(colleague), data)

    assert response.status_code == 302
    colleague = User.objects.get(pk=colleague.pk)
    assert colleague.role == Role.OPS
    assert can_access_merchant(colleague, third.pk) and not can_access_merchant(colleague, merchant.pk)


def test_a_user_shared_with_another_merchant_is_read_only_to_a_merchant_admin(login, fleet):
    colleague = fleet["a_colleague"]
    grant_merchant_access(colleague, fleet["b"])
    client = login(Role.ADMIN)

    page = client.get(change_url(colleague))
    post = client.post(
        change_url(colleague), {"email": colleague.email, "role": Role.ADMIN, "is_active": "on"}
    )

    content = page.content.decode()
    assert page.status_code == 200 and "Brew Co" in content
    assert not [secret for secret in B_SECRETS if secret in content]
    assert post.status_code == 403
    assert User.objects.get(pk=colleague.pk).role == Role.VIEWER


def test_only_a_superuser_changes_a_superuser(login, make_user):
    root = make_user(Role.ADMIN, is_platform_staff=True, is_superuser=True)
    url = reverse("admin:auth_user_password_change", args=[root.pk])
    data = {"password1": "Taken-Over-1!", "password2": "Taken-Over-1!", "usable_password": "true"}

    response = login(Role.ADMIN, platform=True).post(url, data)

    assert response.status_code == 403
    assert not User.objects.get(pk=root.pk).check_password("Taken-Over-1!")


def test_an_admin_sets_a_users_password(login, fleet):
    colleague = fleet["a_colleague"]
    url = reverse("admin:auth_user_password_change", args=[colleague.pk])

    response = login(Role.ADMIN).post(
        url, {"password1": "An0ther-Secret!", "password2": "An0ther-Secret!", "usable_password": "true"}
    )

    assert response.status_code == 302
    assert User.objects.get(pk=colleague.pk).check_password("An0ther-Secret!")


def test_settings_are_in_the_menu_only_for_platform_admins(login):
    link = reverse("admin:django_celery_beat_periodictask_changelist")

    assert link in login(Role.ADMIN, platform=True).get(reverse("admin:index")).content.decode()
    assert link not in login(Role.ADMIN).get(reverse("admin:index")).content.decode()


# --- Materials: CSV import ----------------------------------------------------------------------------

CSV_FILE = b"code,name,kind,unit,enabled\nOAT-MILK,Oat milk,milk,ml,1\nSUGAR,Cane sugar,powder,g,1\n"


def import_csv(client):
    """The upload, its preview page and the confirmation (followed to the list)."""
    upload = SimpleUploadedFile("materials.csv", CSV_FILE, content_type="text/csv")
    uploaded = client.post(reverse("admin:inventory_material_import"), {"format": "0", "import_file": upload})
    if uploaded.status_code != 302:
        return uploaded, None
    preview = client.get(uploaded["Location"])
    confirm = reverse("admin:inventory_material_confirm_import_job", args=[preview.context["job"].pk])
    return preview, client.post(confirm, follow=True)


@pytest.mark.parametrize("role", [Role.OPS, Role.ADMIN])
def test_materials_are_imported_from_csv_through_the_admin(login, materials, role):
    preview, done = import_csv(login(role))

    assert "Oat milk" in preview.content.decode()
    assert done.status_code == 200
    assert "Import finished: 1 new, 1 updated" in messages_of(done)[0]
    assert Material.objects.get(code="OAT-MILK").unit == "ml"
    assert Material.objects.get(code="SUGAR").name == "Cane sugar"
    assert Material.objects.filter(code="SUGAR").count() == 1


def test_a_viewer_cannot_import_materials(login, materials):
    client = login(Role.VIEWER)

    preview, _ = import_csv(client)
    confirm = client.post(reverse("admin:inventory_material_confirm_import_job", args=[1]))
    changelist = client.get(reverse("admin:inventory_material_changelist")).content.decode()

    assert preview.status_code == 403 and confirm.status_code == 403
    assert reverse("admin:inventory_material_import") not in changelist
    assert not Material.objects.filter(code="OAT-MILK").exists()


def test_the_admin_has_a_favicon(login, fleet):
    client = login(Role.VIEWER)

    page = client.get(reverse("admin:index")).content.decode()
    asked = client.get("/favicon.ico")

    assert re.search(r'<link[^>]+rel="icon"[^>]+href="/static/coffeeshop/favicon\.svg"', page)
    assert (asked.status_code, asked["Location"]) == (301, "/static/coffeeshop/favicon.svg")


@pytest.mark.parametrize(("platform", "sees_settings"), [(True, True), (False, False)])
def test_the_sidebar_shows_what_operators_use_and_framework_pages_under_settings(
    login, fleet, platform, sees_settings
):
    page = login(Role.ADMIN, platform=platform).get(reverse("admin:index")).content.decode()

    for operators_page in ("devices/device", "inventory/bin", "recipes/rollout", 'operations/alarm/"'):
        assert f"/admin/{operators_page}" in page
    for framework_page in ("axes/accessattempt", "django_celery_beat/crontabschedule"):
        assert (f"/admin/{framework_page}/" in page) is sees_settings
