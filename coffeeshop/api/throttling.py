import time

from rest_framework.throttling import SimpleRateThrottle, UserRateThrottle


class StaffUserThrottle(UserRateThrottle):
    """Per user (or per IP for anonymous callers). Machines have their own throttle and skip this one."""

    scope = "user"

    def allow_request(self, request, view):
        if getattr(view, "is_machine_endpoint", False):
            return True
        return super().allow_request(request, view)


class DeviceRateThrottle(SimpleRateThrottle):
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


class RegistrationThrottle(SimpleRateThrottle):
    """Registration is unauthenticated: throttle by address to slow down secret guessing."""

    scope = "register"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
