from accounts.models import Merchant, User
from accounts.tenancy import merchant_ids_for


def merchants_for(user):
    ids = merchant_ids_for(user)
    merchants = Merchant.objects.all()
    return merchants if ids is None else merchants.filter(pk__in=ids)


def users_for(user):
    """Users visible to `user`: everyone for platform staff, else the users sharing one of their merchants."""
    ids = merchant_ids_for(user)
    if ids is None:
        return User.objects.all()
    from django.contrib.contenttypes.models import ContentType
    from guardian.models import UserObjectPermission

    from accounts.models import Merchant

    member_ids = UserObjectPermission.objects.filter(
        content_type=ContentType.objects.get_for_model(Merchant),
        permission__codename="access_merchant",
        object_pk__in=[str(pk) for pk in ids],
    ).values("user_id")
    return User.objects.filter(pk__in=member_ids, is_platform_staff=False, is_superuser=False)
