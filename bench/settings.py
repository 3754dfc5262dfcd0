"""The application's own settings, unchanged, with the bench's URLconf (which adds `/bench/ceiling`).

Used only by `bench/heartbeat.py` (DJANGO_SETTINGS_MODULE=bench.settings): the same middleware,
database, cache and security settings as production, so the ceiling and the heartbeat are served
by exactly the same stack.
"""

from coffeeshop.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
