"""The audit trail in the back office: Admins read their merchants' lines, nobody writes one."""

from django.contrib import admin

from accounts.models import Capability
from audit.models import OperationLog
from coffeeshop.admin_base import ScopedModelAdmin, ScopedRelatedFilter, user_can


def can_read_audit(request) -> bool:
    return user_can(request.user, Capability.MANAGE_USERS)


@admin.register(OperationLog)
class OperationLogAdmin(ScopedModelAdmin):
    """Who did what. Admins read their merchants' trail; nobody adds, changes or deletes a line."""

    view_capability = Capability.MANAGE_USERS
    write_capability = None
    date_hierarchy = "created_at"
    list_display = [
        "created_at",
        "action",
        "target_repr",
        "actor",
        "source",
        "merchant",
        "device",
        "ip_address",
    ]
    list_select_related = ["actor", "merchant", "device"]
    list_filter = ["source", "action", ("merchant", ScopedRelatedFilter)]
    list_filter_submit = True
    search_fields = ["action", "target_repr", "actor__email"]
    show_full_result_count = False
    fields = [
        "created_at",
        "action",
        "source",
        "actor",
        "merchant",
        "device",
        "ip_address",
        "target_type",
        "target_id",
        "target_repr",
        "changes",
    ]
