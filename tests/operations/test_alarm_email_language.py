"""Each alarm e-mail in its recipient's language: subject and body translated, the time in the
merchant's zone, the alarm's code the English identifier machines and integrations match on."""

from datetime import UTC, datetime

import pytest

from operations.models import AlarmType, NotificationChannel, Severity
from operations.services import alarms, notifications
from tests.factories import DeviceFactory

pytestmark = pytest.mark.django_db


def test_one_alarm_reaches_a_chinese_and_an_english_recipient_each_in_their_language(merchant, mailoutbox):
    merchant.time_zone = "Asia/Shanghai"
    merchant.save()
    device = DeviceFactory(merchant=merchant, alias="Lobby A")
    for target, language in [("li@brew.example.com", "zh-hans"), ("ann@brew.example.com", "en")]:
        NotificationChannel.objects.create(merchant=merchant, kind="email", target=target, language=language)
    alarm, _ = alarms.open_or_bump_alarm(
        device, AlarmType.OFFLINE, Severity.CRITICAL, now=datetime(2026, 12, 1, 17, 5, tzinfo=UTC)
    )

    notifications.notify_alarm(alarm.pk)

    mails = {mail.to[0]: mail for mail in mailoutbox}
    chinese, english = mails["li@brew.example.com"], mails["ann@brew.example.com"]
    assert chinese.subject.startswith("[严重]") and "离线" in chinese.subject
    assert "告警：" in chinese.body and "代码 offline" in chinese.body
    assert "Asia/Shanghai" in chinese.body and "2026" in chinese.body and "01:05" in chinese.body
    assert english.subject == "[Critical] Offline on Lobby A"
    assert "Alarm: Offline (code offline)" in english.body
    assert "Asia/Shanghai" in english.body and "1:05" in english.body
    assert not any("\u4e00" <= char <= "\u9fff" for char in english.subject + english.body)
