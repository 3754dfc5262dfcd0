from django.conf import settings
from django.core.checks import Error, register


@register(deploy=True)
def device_tokens_enabled(app_configs, **kwargs):
    if not settings.ENABLE_DEVICE_TOKEN:
        return [
            Error(
                "ENABLE_DEVICE_TOKEN is off: any caller can act as any machine.",
                hint="Unset ENABLE_DEVICE_TOKEN in production.",
                id="devices.E001",
            )
        ]
    return []
