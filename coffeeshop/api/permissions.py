"""Staff permissions: every staff endpoint needs VIEW to read and its own capability to write.

Object scoping is not done here: querysets are scoped with `for_user` (accounts.tenancy), so an object of
another merchant is simply not found (404), never "forbidden" (which would confirm it exists).
"""

from rest_framework.permissions import SAFE_METHODS, BasePermission

from accounts.models import Capability


def is_staff_user(user) -> bool:
    return bool(
        user
        and getattr(user, "is_authenticated", False)
        and getattr(user, "is_staff", False)
        and hasattr(user, "can")
    )


class IsStaffMember(BasePermission):
    """Reads need VIEW; writes need the view's `write_capability` (default: Admin-only settings)."""

    def has_permission(self, request, view):
        user = request.user
        if not is_staff_user(user) or not user.can(Capability.VIEW):
            return False
        if request.method in SAFE_METHODS:
            return True
        return user.can(required_capability(view, request))


def required_capability(view, request) -> str:
    by_action = getattr(view, "action_capabilities", {})
    action = getattr(view, "action", None)
    return by_action.get(action) or getattr(view, "write_capability", Capability.MANAGE_SETTINGS)
