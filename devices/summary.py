"""What a machine's summary (`GET /api/v1/devices/{id}/summary`) says beyond its own readings.

Sales belong to orders, alarms and commands to operations, and devices imports neither: each app adds
its part with `summary_part`, a function (device, now) -> dict of fields, registered when the app is
ready.
"""

from datetime import datetime

_PARTS = []


def summary_part(tell):
    _PARTS.append(tell)
    return tell


def other_apps_parts(device, now: datetime) -> dict:
    parts = {}
    for tell in _PARTS:
        parts.update(tell(device, now))
    return parts
