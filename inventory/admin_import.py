"""The material import in the admin, as jobs: the upload starts a preview job, its page shows the job's
progress and then the preview (the counts, the rows in error with their row and column, the other rows
a page at a time), and the confirmation starts the import job.

A sheet of at most MATERIAL_IMPORT_SYNC_MAX_ROWS rows is run within the request, by the same job code:
the manager goes straight from the upload to the preview and from the confirmation to the list, as
before, and a small file needs no worker. A larger one is queued to the workers; its page follows it
live and shows the preview (or the outcome) when the job ends.
"""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from coffeeshop.exceptions import DomainError
from inventory.services import read_sheet
from inventory.services.import_jobs import (
    confirm_material_import,
    import_is_large,
    import_report,
    rows_in_error_first,
    run_material_import,
    start_material_import,
)
from inventory.tasks import run_material_import as run_material_import_task
from operations.admin.jobs import job_element
from operations.models import TaskJob

ROWS_PER_PAGE = 100
ERRORS_SHOWN = 500  # a file with more rows in error is fixed from these first
STATUS_LABELS = {
    "new": gettext_lazy("New"),
    "updated": gettext_lazy("Updated"),
    "unchanged": gettext_lazy("Unchanged"),
    "error": gettext_lazy("Error"),
}


def finished_message(counts: dict) -> str:
    return _("Import finished: %(new)d new, %(updated)d updated, %(unchanged)d unchanged.") % counts


class MaterialImportJobsMixin:
    """For MaterialAdmin: the import form of django-import-export, then our job pages."""

    def get_urls(self):
        meta = self.model._meta
        extra = [
            path(
                "import-jobs/<int:job_id>/",
                self.admin_site.admin_view(self.import_job_view),
                name=f"{meta.app_label}_{meta.model_name}_import_job",
            ),
            path(
                "import-jobs/<int:job_id>/confirm/",
                self.admin_site.admin_view(require_POST(self.confirm_import_view)),
                name=f"{meta.app_label}_{meta.model_name}_confirm_import_job",
            ),
        ]
        return [*extra, *super().get_urls()]

    def import_job_url(self, job: TaskJob) -> str:
        return reverse("admin:inventory_material_import_job", args=[job.pk])

    def import_action(self, request, **kwargs):
        """The form as django-import-export shows it; its upload starts a preview job."""
        if request.method != "POST":
            return super().import_action(request, **kwargs)
        if not self.has_import_permission(request):
            raise PermissionDenied
        form = self.create_import_form(request)
        if form.is_valid():
            upload = form.cleaned_data["import_file"]
            content = b"".join(upload.chunks())
            try:
                dataset = read_sheet(content)
                large = import_is_large(len(dataset))
                job = start_material_import(
                    merchant=form.cleaned_data["merchant"],
                    user=request.user,
                    content=content,
                    file_name=upload.name,
                    dry_run=True,
                    dataset=dataset,
                    enqueue=run_material_import_task.delay if large else lambda job_id: None,
                )
            except DomainError as error:
                form.add_error("import_file", error.message)
            else:
                if not large:
                    run_material_import(job.pk, beat=False)
                return HttpResponseRedirect(self.import_job_url(job))
        return self._import_form_page(request, form)

    def _import_form_page(self, request, form):
        context = {
            **self.get_import_context_data(),
            **self.admin_site.each_context(request),
            "title": _("Import"),
            "form": form,
            "opts": self.model._meta,
            "media": self.media + form.media,
            "fields_list": [
                (resource.get_display_name(), [f.column_name for f in resource().get_user_visible_fields()])
                for resource in self.get_import_resource_classes(request)
            ],
            "import_error_display": self.import_error_display,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, [self.import_template_name], context)

    def process_import(self, request, **kwargs):
        """django-import-export's confirmation from a temporary file: replaced by the job's."""
        raise Http404(_("Confirm an import on its preview page."))

    def _import_job(self, request, job_id) -> TaskJob:
        if not self.has_import_permission(request):
            raise PermissionDenied
        imports = TaskJob.objects.for_user(request.user).filter(kind=TaskJob.Kind.MATERIAL_IMPORT)
        job = imports.filter(pk=job_id).first()
        if job is None:
            raise Http404(_("No such import."))
        return job

    def import_job_view(self, request, job_id):
        job = self._import_job(request, job_id)
        files_kept = job.files_deleted_at is None  # else its progress element says they were deleted
        report = import_report(job) if job.is_finished and files_kept else None
        context = {
            **self.admin_site.each_context(request),
            "title": _("Material import: preview") if job.params["dry_run"] else _("Material import"),
            "opts": self.model._meta,
            "job": job,
            "progress": job_element(job, reload_when_finished=True),
            "params": job.params,
            "counts": job.params.get("counts"),
            "finished_message": finished_message(job.params["counts"])
            if job.status == TaskJob.Status.SUCCEEDED and not job.params["dry_run"]
            else "",
            "can_confirm": job.params["dry_run"]
            and files_kept
            and job.status == TaskJob.Status.SUCCEEDED
            and not job.params.get("counts", {}).get("error"),
            "confirm_job": job.params.get("confirm_job"),
        }
        if report is not None:
            context.update(self._report_context(request, report))
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/inventory/material/import_job.html", context)

    def _report_context(self, request, report: list[dict]) -> dict:
        errors = [
            {"row": row["row"], "column": column, "message": message, "value": row["values"].get(column, "")}
            for row in rows_in_error_first(report)
            if row["status"] == "error"
            for column, found in row["errors"].items()
            for message in found
        ]
        columns = list(report[0]["values"]) if report else []
        page = Paginator(report, ROWS_PER_PAGE).get_page(request.GET.get("page"))
        return {
            "errors": errors[:ERRORS_SHOWN],
            "errors_left_out": max(0, len(errors) - ERRORS_SHOWN),
            "columns": columns,
            "page": page,
            "rows": [
                {
                    **row,
                    "label": STATUS_LABELS[row["status"]],
                    "cells": [row["values"].get(column, "") for column in columns],
                }
                for row in page.object_list
            ],
        }

    def confirm_import_view(self, request, job_id):
        preview = self._import_job(request, job_id)
        large = import_is_large(preview.params["rows"])
        try:
            job = confirm_material_import(
                preview,
                user=request.user,
                enqueue=run_material_import_task.delay if large else lambda job_id: None,
            )
        except DomainError as error:
            messages.error(request, error.message)
            return HttpResponseRedirect(self.import_job_url(preview))
        if not large:
            job = run_material_import(job.pk, beat=False) or TaskJob.objects.get(pk=job.pk)
            if job.status == TaskJob.Status.SUCCEEDED:
                messages.success(request, finished_message(job.params["counts"]))
                return HttpResponseRedirect(reverse("admin:inventory_material_changelist"))
        return HttpResponseRedirect(self.import_job_url(job))
