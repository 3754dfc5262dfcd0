"""Every write to the fleet that carries a rule. Callers import from here."""

from devices.services.credentials import (
    DeviceIdentity,
    claim_quiet_request,
    identify_device,
    identify_device_and_count,
    identity_of,
    issue_token,
    release_quiet_request,
    revoke_device_token,
    revoke_tokens,
    rotate_device_token,
)
from devices.services.fleet import (
    create_location,
    delete_location,
    update_device_settings,
    update_location,
)
from devices.services.heartbeat import (
    BinReading,
    ReportOutcome,
    StatusReading,
    record_bin_report,
    record_heartbeat,
    record_quiet_heartbeat,
)
from devices.services.offline import mark_silent_devices_offline
from devices.services.registration import Registration, register_device
from devices.services.write_behind import flush_heartbeats, sample_status_history

__all__ = [
    "BinReading",
    "DeviceIdentity",
    "Registration",
    "ReportOutcome",
    "StatusReading",
    "claim_quiet_request",
    "create_location",
    "delete_location",
    "flush_heartbeats",
    "identify_device",
    "identify_device_and_count",
    "identity_of",
    "issue_token",
    "mark_silent_devices_offline",
    "record_bin_report",
    "record_heartbeat",
    "record_quiet_heartbeat",
    "register_device",
    "release_quiet_request",
    "revoke_device_token",
    "revoke_tokens",
    "rotate_device_token",
    "sample_status_history",
    "update_device_settings",
    "update_location",
]
