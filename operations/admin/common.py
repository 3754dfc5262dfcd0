"""What the operations admin pages share: links to admin pages, extra object views and the labels
live.js needs to write a status in the page's language."""

import json

from django.urls import path, reverse

EMPTY = "\u2013"


def labels_of(choices) -> str:
    """A TextChoices' labels as JSON, for live.js to write a status in the page's language."""
    return json.dumps({value: str(label) for value, label in choices.choices}, ensure_ascii=False)


def admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def object_views(model_admin, **views) -> list:
    """Extra admin pages of one object: `<id>/<name>/`, named `<app>_<model>_<name>` like Django's own."""
    meta = model_admin.model._meta
    return [
        path(
            f"<path:object_id>/{name}/",
            model_admin.admin_site.admin_view(view),
            name=f"{meta.app_label}_{meta.model_name}_{name}",
        )
        for name, view in views.items()
    ]
