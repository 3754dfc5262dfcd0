"""What the fleet tells other apps without knowing them."""

from django.dispatch import Signal

# Bin levels written behind by quiet heartbeats have reached the database (`flush_heartbeats`).
# Sent with bins_by_device: {Device: [DeviceBin, ...]}, every bin of each machine as it now stands.
bins_flushed = Signal()
