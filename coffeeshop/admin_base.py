"""What every back-office admin page shares: role checks and merchant scoping.

Django's model permissions are not used. A user's role decides what they may do (a page names the
capability its writes need, see `accounts.models.ROLE_CAPABILITIES`) and the tenancy rule of
`accounts.tenancy` decides what they may see. Everything a page lists, counts, opens by id, offers in
a dropdown or a list filter goes through the same scoping, so a user of one merchant never meets
another merchant's data: an object outside their merchants is simply missing.
"""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import ImproperlyConfigured
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext as _
from unfold.admin import ModelAdmin, TabularInline
from unfold.contrib.filters.admin import RelatedDropdownFilter

from accounts.models import Capability, Merchant, User
from accounts.selectors import merchants_for, users_for
from accounts.tenancy import sees_all_merchants
from coffeeshop.exceptions import DomainError

SAME_AS_WRITE = "same-as-write"


def user_can(user, capability: str | None) -> bool:
    """Whether a back-office user holds `capability` (None: a capability nobody holds)."""
    return bool(
        capability and user.is_authenticated and user.is_active and user.is_staff and user.can(capability)
    )


def can_manage_settings(request) -> bool:
    """Periodic tasks and schedules are global: only platform-level Admins see and change them."""
    return sees_all_merchants(request.user) and user_can(request.user, Capability.MANAGE_SETTINGS)


def visible_to(user, queryset):
    """`queryset` narrowed to the rows `user` may see, or None if its model belongs to no merchant."""
    if queryset.model is Merchant:
        return queryset & merchants_for(user)
    if queryset.model is User:
        return queryset & users_for(user)
    if hasattr(queryset, "for_user"):
        return queryset.for_user(user)
    return None


def redirect_after_dialog(request, url: str) -> HttpResponse:
    """unfold posts dialog actions with htmx, which follows HX-Redirect; a plain form post gets a 302."""
    if request.headers.get("HX-Request"):
        return HttpResponse(headers={"HX-Redirect": url})
    return HttpResponseRedirect(url)


class RoleScopedMixin:
    """Role checks and merchant scoping, shared by model admins and inlines.

    `write_capability` is needed to change (and, unless `add_capability` / `delete_capability` say
    otherwise, to add and delete); None means read-only for everyone. `platform_only` pages exist only
    for platform staff. `tenant_scoped = False` marks a model that belongs to no merchant (the material
    catalogue, schedules); any other model must be scopable, or its page fails loudly rather than list
    every merchant's rows.
    """

    view_capability: str | None = Capability.VIEW
    write_capability: str | None = None
    add_capability: str | None = SAME_AS_WRITE
    delete_capability: str | None = SAME_AS_WRITE
    platform_only = False
    tenant_scoped = True

    def has_capability(self, request, capability: str | None) -> bool:
        if capability == SAME_AS_WRITE:
            capability = self.write_capability
        if self.platform_only and not sees_all_merchants(request.user):
            return False
        return user_can(request.user, capability)

    def has_view_permission(self, request, obj=None):
        return self.has_capability(request, self.view_capability)

    def has_change_permission(self, request, obj=None):
        return self.has_capability(request, self.write_capability)

    def has_add_permission(self, request, obj=None):
        return self.has_capability(request, self.add_capability)

    def has_delete_permission(self, request, obj=None):
        return self.has_capability(request, self.delete_capability)

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if not self.tenant_scoped:
            return queryset
        scoped = visible_to(request.user, queryset)
        if scoped is None:
            raise ImproperlyConfigured(
                f"{type(self).__name__}: {queryset.model.__name__} has no tenancy scope; "
                "give it a TenantQuerySet or set tenant_scoped = False"
            )
        return scoped

    def get_field_queryset(self, db, db_field, request):
        """Dropdown choices of a relation list only what the user may see (merchants, locations, users)."""
        queryset = super().get_field_queryset(db, db_field, request)
        base = queryset if queryset is not None else db_field.remote_field.model._default_manager.using(db)
        scoped = visible_to(request.user, base)
        return queryset if scoped is None else scoped


class ScopedModelAdmin(RoleScopedMixin, ModelAdmin):
    """The base of every coffeeshop admin page (see RoleScopedMixin).

    `secret_fields` may never be used in a changelist lookup: `?provisioning_secret__startswith=a`
    would let someone who may not read a secret guess it one character at a time from the counts.
    """

    secret_fields: tuple[str, ...] = ()

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    def lookup_allowed(self, lookup, value, request=None):
        if any(lookup == name or lookup.startswith(f"{name}__") for name in self.secret_fields):
            return False
        return super().lookup_allowed(lookup, value, request)

    def log_deletions(self, request, queryset):
        """One history entry per object, each saved on its own: Django writes the entries of a multiple
        delete in one bulk insert, which sends no post_save, so the audit trail would never hear of it."""
        entries = []
        for obj in queryset:
            entries += super().log_deletions(request, [obj])
        return entries

    def object_for_action(self, request, object_id):
        """The object a detail action acts on, found the way the change page finds it (scoped)."""
        obj = self.get_object(request, unquote(str(object_id)))
        if obj is None:
            raise Http404(_("%(name)s not found.") % {"name": self.opts.verbose_name})
        return obj

    def submit_dialog(self, request, form, dialog: dict, call, success) -> HttpResponse:
        """A dialog action's submit: `call()` the service; a refusal (DomainError) is shown in the dialog,
        which stays open; otherwise `success(outcome)` is the message and the object's page follows."""
        try:
            outcome = call()
        except DomainError as error:
            form.add_service_error(error)
            return form.dialog_response(request, dialog)
        messages.success(request, success(outcome))
        return self.back_to_change_page(request, form.target)

    def back_to_change_page(self, request, obj) -> HttpResponse:
        url = reverse(
            f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_change",
            args=[obj.pk],
            current_app=self.admin_site.name,
        )
        return redirect_after_dialog(request, url)


class MerchantOwnedAdmin(ScopedModelAdmin):
    """A page of rows that each belong to one merchant (their `merchant` field): only platform staff see
    the merchant column and filter (everyone else sees one merchant's rows, or a few of their own), and a
    new row's merchant is preset for a user who has just one."""

    def get_list_display(self, request):
        shown = super().get_list_display(request)
        return [*shown, "merchant"] if sees_all_merchants(request.user) else shown

    def get_list_filter(self, request):
        filters = super().get_list_filter(request)
        return [("merchant", ScopedRelatedFilter), *filters] if sees_all_merchants(request.user) else filters

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        own = list(merchants_for(request.user)[:2])
        if len(own) == 1:
            initial.setdefault("merchant", own[0].pk)
        return initial


class ScopedTabularInline(RoleScopedMixin, TabularInline):
    """An inline with the same role checks and scoping as its page."""


class ScopedRelatedFilter(RelatedDropdownFilter):
    """A list filter on a merchant, location or user that offers only the ones the user may see.

    Django's RelatedFieldListFilter lists every row of the related table, which would name other
    merchants (and their locations) to anyone opening the filter.
    """

    def field_choices(self, field, request, model_admin):
        visible = visible_to(request.user, field.related_model._default_manager.all())
        if visible is None:
            return super().field_choices(field, request, model_admin)
        ordering = self.field_admin_ordering(field, request, model_admin)
        if ordering:
            visible = visible.order_by(*ordering)
        return [(obj.pk, str(obj)) for obj in visible]


class OpensOnFilter(admin.SimpleListFilter):
    """A filter with a default choice: the list opens on `DEFAULT`, the other choices a click away."""

    DEFAULT = ""

    def value(self):
        return super().value() or self.DEFAULT

    def choices(self, changelist):
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }
