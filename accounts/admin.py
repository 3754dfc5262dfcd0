"""Admin pages for merchants and back-office users.

Roles replace Django's groups and permissions, so the Group page is gone. API tokens
(rest_framework.authtoken) have no admin page either: TokenProxy lists every user's token, and a
token is a password.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.models import Group
from django.db.models import Count
from django.utils.translation import gettext_lazy as _
from guardian.shortcuts import get_objects_for_user, get_users_with_perms
from rest_framework.authtoken.models import TokenProxy
from unfold.decorators import action, display
from unfold.forms import AdminPasswordChangeForm
from unfold.forms import UserChangeForm as UnfoldUserChangeForm
from unfold.forms import UserCreationForm as UnfoldUserCreationForm
from unfold.widgets import UnfoldAdminCheckboxSelectMultipleWidget

from accounts import services
from accounts.models import Capability, Merchant, User
from accounts.selectors import merchants_for
from accounts.tenancy import ACCESS_MERCHANT, merchant_ids_for, sees_all_merchants
from coffeeshop.admin_base import ScopedModelAdmin

admin.site.unregister(Group)
admin.site.unregister(TokenProxy)


def memberships_of(user: User):
    """The merchants `user` was granted, whatever their platform flag (tenancy reads the flag first)."""
    return get_objects_for_user(
        user, ACCESS_MERCHANT, klass=Merchant, accept_global_perms=False, with_superuser=False
    )


def may_manage(actor: User, target: User) -> bool:
    """Only a superuser changes a superuser; a user shared with a merchant the actor cannot see is not
    theirs alone to change (their role and password would reach into that merchant too)."""
    if target.is_superuser and not actor.is_superuser:
        return False
    visible = merchant_ids_for(actor)
    return visible is None or set(memberships_of(target).values_list("pk", flat=True)) <= visible


# --- Merchants --------------------------------------------------------------------------------------


@admin.register(Merchant)
class MerchantAdmin(ScopedModelAdmin):
    """Platform staff add merchants; a merchant's own Admins keep its contacts and its secret."""

    write_capability = Capability.MANAGE_MERCHANTS
    secret_fields = ("provisioning_secret",)
    list_display = ["name", "status", "contact_name", "contact_email", "device_count", "location_count"]
    list_filter = ["status"]
    search_fields = ["name", "contact_name", "contact_email"]
    ordering = ["name"]  # the counts' GROUP BY drops Meta.ordering
    actions_detail = ["rotate_provisioning_secret"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                device_count=Count("devices", distinct=True), location_count=Count("locations", distinct=True)
            )
        )

    def has_add_permission(self, request, obj=None):
        return sees_all_merchants(request.user) and super().has_add_permission(request)

    def has_delete_permission(self, request, obj=None):
        return sees_all_merchants(request.user) and super().has_delete_permission(request, obj)

    def has_manage_permission(self, request, obj=None):
        return self.has_capability(request, Capability.MANAGE_MERCHANTS)

    def get_fields(self, request, obj=None):
        fields = ["name", "status", "time_zone", "currency", "contact_name", "contact_email", "contact_phone"]
        if obj is not None:
            fields.append("created_at")
            if self.has_manage_permission(request):
                fields.append("provisioning_secret")
        return fields

    def get_readonly_fields(self, request, obj=None):
        readonly = ["created_at", "provisioning_secret"]
        if not sees_all_merchants(request.user):
            readonly += ["name", "status"]
        return readonly

    @display(description=_("machines"), ordering="device_count")
    def device_count(self, merchant):
        return merchant.device_count

    @display(description=_("locations"), ordering="location_count")
    def location_count(self, merchant):
        return merchant.location_count

    @action(
        description=_("Rotate provisioning secret"),
        icon="autorenew",
        permissions=["manage"],
        dialog={
            "title": _("Rotate the provisioning secret?"),
            "description": _(
                "Machines registering from now on need the new secret; registered machines keep working."
            ),
            "form_submit_text": _("Rotate secret"),
        },
    )
    def rotate_provisioning_secret(self, request, form, object_id):
        merchant = self.object_for_action(request, object_id)
        services.rotate_provisioning_secret(merchant)
        messages.success(
            request,
            _("%(merchant)s has a new provisioning secret; the old one no longer registers machines.")
            % {"merchant": merchant},
        )
        return self.back_to_change_page(request, merchant)


# --- Users ------------------------------------------------------------------------------------------


class MembershipFormMixin(forms.ModelForm):
    """The merchants a user belongs to, as far as the editing user (`actor`) can see them.

    Merchants the actor cannot see are neither shown nor touched when the form is saved.
    """

    actor: User | None = None

    merchants = forms.ModelMultipleChoiceField(
        label=_("Merchants"),
        queryset=Merchant.objects.none(),
        required=False,
        widget=UnfoldAdminCheckboxSelectMultipleWidget,
        help_text=_("The merchants whose machines and data this user sees."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.visible_merchants = merchants_for(self.actor)
        field = self.fields.get("merchants")
        if field is not None:
            field.queryset = self.visible_merchants
            if self.instance.pk:
                field.initial = list(
                    (memberships_of(self.instance) & self.visible_merchants).values_list("pk", flat=True)
                )

    def clean(self):
        cleaned = super().clean()
        needs_merchant = "merchants" in self.fields and not sees_all_merchants(self.actor)
        if needs_merchant and not self.instance.pk and not cleaned.get("merchants"):
            self.add_error("merchants", _("Choose at least one of your merchants."))
        return cleaned

    def save_memberships(self, user: User) -> None:
        if "merchants" not in self.fields:
            return
        current = set(memberships_of(user) & self.visible_merchants)
        wanted = set(self.cleaned_data["merchants"])
        for merchant in wanted - current:
            services.grant_merchant_access(user, merchant)
        for merchant in current - wanted:
            services.revoke_merchant_access(user, merchant)


class UserChangeForm(MembershipFormMixin, UnfoldUserChangeForm):
    class Meta(UnfoldUserChangeForm.Meta):
        model = User
        fields = ["email", "name", "password", "role", "is_platform_staff", "is_active", "is_superuser"]
        field_classes = {}


class UserCreationForm(MembershipFormMixin, UnfoldUserCreationForm):
    class Meta(UnfoldUserCreationForm.Meta):
        model = User
        fields = ("email",)
        field_classes = {}

    def clean_email(self):
        email = User.objects.normalize_email(self.cleaned_data["email"]).lower()
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError(_("A user with this e-mail already exists."))
        return email


class MerchantMembershipFilter(admin.SimpleListFilter):
    """Users of one of the merchants the viewer can see (never a merchant they cannot)."""

    title = _("merchant")
    parameter_name = "merchant"

    def lookups(self, request, model_admin):
        return [(str(m.pk), m.name) for m in merchants_for(request.user)]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        merchant = (
            merchants_for(request.user).filter(pk=self.value()).first() if self.value().isdigit() else None
        )
        if merchant is None:
            return queryset.none()
        members = get_users_with_perms(
            merchant, only_with_perms_in=["access_merchant"], with_superusers=False, with_group_users=False
        )
        return queryset.filter(pk__in=members.values("pk"))


@admin.register(User)
class UserAdmin(BaseUserAdmin, ScopedModelAdmin):
    """Admins manage the users of their merchants; only platform staff make platform staff."""

    write_capability = Capability.MANAGE_USERS
    form = UserChangeForm
    add_form = UserCreationForm
    change_password_form = AdminPasswordChangeForm
    list_display = ["email", "name", "role", "is_platform_staff", "is_active", "last_login"]
    list_filter = ["role", MerchantMembershipFilter, "is_platform_staff", "is_active"]
    search_fields = ["email", "name"]
    ordering = ["email"]
    filter_horizontal = ()
    readonly_fields = ["last_login", "date_joined"]

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [
                (None, {"fields": ["email", "name", "password1", "password2"]}),
                (_("Access"), {"fields": ["role", "merchants", "is_platform_staff"]}),
            ]
        editable = self.has_change_permission(request, obj)
        # Read-only pages show memberships as text and never the password hash.
        access = ["role", "merchants" if editable else "memberships", "is_platform_staff", "is_active"]
        if request.user.is_superuser:
            access.append("is_superuser")
        return [
            (None, {"fields": ["email", "name", "password"] if editable else ["email", "name"]}),
            (_("Access"), {"fields": access}),
            (_("Important dates"), {"fields": ["last_login", "date_joined"]}),
        ]

    def get_readonly_fields(self, request, obj=None):
        readonly = list(self.readonly_fields)
        if not sees_all_merchants(request.user):
            readonly.append("is_platform_staff")
        return readonly

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        return type(form.__name__, (form,), {"actor": request.user})

    def has_change_permission(self, request, obj=None):
        allowed = super().has_change_permission(request, obj)
        if allowed and isinstance(obj, User):
            return may_manage(request.user, obj)
        return allowed

    def has_delete_permission(self, request, obj=None):
        allowed = super().has_delete_permission(request, obj)
        if allowed and isinstance(obj, User):
            return obj.pk != request.user.pk and may_manage(request.user, obj)
        return allowed

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        form.save_memberships(form.instance)

    def get_object(self, request, object_id, from_field=None):
        user = super().get_object(request, object_id, from_field)
        if user is not None:
            user.visible_memberships = list(memberships_of(user) & merchants_for(request.user))
        return user

    @display(description=_("merchants"))
    def memberships(self, user):
        return ", ".join(m.name for m in getattr(user, "visible_memberships", ())) or "\u2013"
