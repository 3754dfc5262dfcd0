from audit.models import OperationLog


def audit_for(user):
    """The trail of the user's merchants (all of it for platform staff)."""
    return OperationLog.objects.for_user(user).select_related("actor")
