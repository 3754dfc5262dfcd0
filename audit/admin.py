"""The audit trail in the back office: Admins read their merchants' lines, nobody writes one."""

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from accounts.models import Capability
from audit.models import OperationLog
from coffeeshop.admin_base import OpensOnFilter, ScopedModelAdmin, ScopedRelatedFilter, user_can

PEOPLE = (OperationLog.Source.ADMIN, OperationLog.Source.API)


def can_read_audit(request) -> bool:
    return user_can(request.user, Capability.MANAGE_USERS)


class ActorFilter(OpensOnFilter):
    """The log opens on what people did; what machines and coffeeshop's own jobs did is a click away."""

    title = _("done by")
    parameter_name = "by"
    DEFAULT = "people"

    def lookups(self, request, model_admin):
        return [
            ("people", _("People")),
            ("machines", _("Machines")),
            ("system", _("coffeeshop's jobs")),
            ("all", _("All")),
        ]

    def queryset(self, request, queryset):
        sources = {
            "people": PEOPLE,
            "machines": (OperationLog.Source.MACHINE,),
            "system": (OperationLog.Source.SYSTEM,),
        }.get(self.value())
        return queryset if sources is None else queryset.filter(source__in=sources)


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
    list_filter = [ActorFilter, "source", "action", ("merchant", ScopedRelatedFilter)]
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
