import time

from django.core.cache.backends.locmem import LocMemCache
from rest_framework.throttling import SimpleRateThrottle, UserRateThrottle

from coffeeshop.redis import REDIS_OUTAGE_ERRORS, redis_failed, redis_is_down

# Where throttles count while Redis is out: this process's memory, as on the embedded default.
COUNTS_WHILE_REDIS_IS_OUT = LocMemCache("coffeeshop-throttles-while-redis-is-out", {})


class CountsWithoutRedis:
    """A throttle that keeps counting, per process, while Redis is out, instead of failing the request."""

    def allow_request(self, request, view):
        if redis_is_down():
            self.cache = COUNTS_WHILE_REDIS_IS_OUT
        try:
            return super().allow_request(request, view)
        except REDIS_OUTAGE_ERRORS as error:
            redis_failed(error)
            self.cache = COUNTS_WHILE_REDIS_IS_OUT
            return super().allow_request(request, view)


class StaffUserThrottle(CountsWithoutRedis, UserRateThrottle):
    """Per user (or per IP for anonymous callers). Machines have their own throttle and skip this one."""

    scope = "user"

    def allow_request(self, request, view):
        if getattr(view, "is_machine_endpoint", False):
            return True
        return super().allow_request(request, view)


class DeviceRateThrottle(CountsWithoutRedis, SimpleRateThrottle):
    """Per machine, sized so a machine on the protocol's normal intervals is never throttled.

    With Redis the machine's authentication already counted the request (one round trip for token and
    counter, a fixed window of the rate's duration); without Redis DRF's own sliding window counts.
    """

    scope = "device"

    def allow_request(self, request, view):
        count = getattr(request, "device_request_count", None)
        if count is None:
            return super().allow_request(request, view)
        self.window_left_s = self.duration - (time.time() % self.duration)
        return count <= self.num_requests

    def wait(self):
        return self.window_left_s if hasattr(self, "window_left_s") else super().wait()

    def get_cache_key(self, request, view):
        identity = getattr(request, "auth", None)
        device_id = getattr(identity, "device_id", None)
        return self.cache_format % {"scope": self.scope, "ident": device_id} if device_id else None


class RegistrationThrottle(CountsWithoutRedis, SimpleRateThrottle):
    """Registration is unauthenticated: throttle by address to slow down secret guessing."""

    scope = "register"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
