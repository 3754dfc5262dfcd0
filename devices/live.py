"""The shape of a machine as the live staff views see it (WebSocket pushes and the admin's script)."""


def bins_payload(bins, *, judged: bool = True) -> list[dict]:
    """Each bin's level; `judged` adds the back office's verdict (`is_low`), which the staff views show
    and the machine protocol's materials reply does not carry."""
    return [
        {
            "index": b.index,
            "material": b.material_code,
            "remaining": b.remaining,
            "capacity": b.capacity,
            "unit": b.unit,
            "level_pct": b.level_pct,
            **({"is_low": b.is_low} if judged else {}),
        }
        for b in bins
    ]


def device_payload(device, bins=None) -> dict:
    payload = {
        "id": device.pk,
        "serial": device.serial,
        "alias": device.alias,
        "merchant_id": device.merchant_id,
        "is_online": device.is_online,
        "state": device.state,
        "temperature_c": device.temperature_c,
        "last_seen_at": device.last_seen_at.isoformat() if device.last_seen_at else None,
        "status_changed_at": device.status_changed_at.isoformat() if device.status_changed_at else None,
    }
    if bins is not None:
        payload["bins"] = bins_payload(bins)
    return payload
