"""Background jobs: their live progress, their file (downloaded through the admin) and canceling."""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpResponseGone, JsonResponse
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _
from unfold.decorators import action, display

from coffeeshop.admin_base import ScopedModelAdmin
from coffeeshop.exceptions import NotFound
from operations.admin.common import EMPTY, admin_url, labels_of, object_views
from operations.models import TASK_JOB_RUN_FIELDS, TaskJob
from operations.services import cancel_job, job_payload
from operations.services.job_files import expired_message, open_job_file
from operations.services.jobs import download_content_type, download_url

EXPIRED = '<span class="cs-job-expired">{}</span>'


def job_element(job: TaskJob, status_url: str | None = None, *, reload_when_finished: bool = False) -> str:
    """The job's status, a progress bar and, once it succeeded, its download link (kept live), or that
    its files were deleted.

    live.js polls `status_url` (the job's own status page by default) when no socket event comes, and
    reloads the page once the job has finished if `reload_when_finished` (a page that shows its result)."""
    download = admin_url(TaskJob, "download", job.pk)
    reloads = reload_when_finished and not job.is_finished
    return format_html(
        '<span class="cs-job" data-live="job" data-job-id="{}" data-status="{}" data-status-url="{}" '
        'data-download-url="{}" data-labels="{}"{}>'
        '<span class="cs-job-status">{}</span>'
        '<span class="cs-progress" role="progressbar" aria-valuemin="0" aria-valuemax="100" '
        'aria-valuenow="{}">'
        '<span class="cs-progress-fill" style="width: {}%"></span></span>'
        '<span class="cs-job-percent">{}%</span>'
        '<a class="cs-job-download text-primary-600" href="{}"{}>{}</a>{}'
        "</span>",
        job.pk,
        job.status,
        status_url or admin_url(TaskJob, "status", job.pk),
        download,
        labels_of(TaskJob.Status),
        mark_safe(' data-reload-when-finished="true"') if reloads else "",
        job.get_status_display(),
        job.progress,
        job.progress,
        job.progress,
        download,
        "" if download_url(job) else mark_safe(" hidden"),
        _("Download XLSX") if job.params.get("format") == "xlsx" else _("Download CSV"),
        format_html(EXPIRED, expired_message()) if job.files_deleted_at else "",
    )


def job_status_response(job: TaskJob) -> JsonResponse:
    payload = job_payload(job)
    payload["download_url"] = admin_url(TaskJob, "download", job.pk) if payload["download_url"] else None
    return JsonResponse(payload)


@admin.register(TaskJob)
class TaskJobAdmin(ScopedModelAdmin):
    """Only the person who started a job sees it (its file holds what they could see); platform staff
    see every job. The file downloads through the admin, never from a public media URL."""

    write_capability = None
    list_display = ["job", "progress_bar", "result_rows", "created_by", "created_at", "finished_at"]
    list_filter = ["kind", "status"]
    list_select_related = ["created_by"]
    fields = ["kind", "progress_bar", "params", *TASK_JOB_RUN_FIELDS]
    readonly_fields = ["progress_bar"]
    actions_detail = ["cancel"]

    def get_urls(self):
        extra = object_views(self, download=self.download_view, status=self.status_view)
        return [*extra, *super().get_urls()]

    def has_cancel_permission(self, request, obj=None):
        return self.has_view_permission(request)  # anyone may cancel a job they can see (as in the API)

    def get_actions_detail(self, request, object_id):
        actions = super().get_actions_detail(request, object_id)
        job = self.get_object(request, unquote(str(object_id)))
        return [a for a in actions if not (job is not None and job.is_finished)]

    @display(description=_("job"), header=True)
    def job(self, job):
        filters = ", ".join(f"{name}={value}" for name, value in sorted(job.params.items()))
        return [str(job), filters or EMPTY]

    @display(description=_("progress"))
    def progress_bar(self, job):
        return job_element(job)

    def visible_job(self, request, object_id) -> TaskJob:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return self.object_for_action(request, object_id)

    def download_view(self, request, object_id):
        """The file; 404 while the job has none, 410 saying why once it was deleted (or went missing)."""
        job = self.visible_job(request, object_id)
        try:
            opened, filename = open_job_file(job)
        except NotFound as error:
            if not error.details.get("reason"):
                raise Http404(error.message) from None
            return HttpResponseGone(error.message, content_type="text/plain; charset=utf-8")
        return FileResponse(
            opened, as_attachment=True, filename=filename, content_type=download_content_type(job)
        )

    def status_view(self, request, object_id):
        """A job's state for live.js when no socket event reaches the page (no Redis, a worker elsewhere)."""
        return job_status_response(self.visible_job(request, object_id))

    @action(
        description=_("Cancel"),
        icon="cancel",
        permissions=["cancel"],
        dialog={
            "title": _("Cancel this job?"),
            "description": _("A waiting job stops at once; a running one at its next progress report."),
            "form_submit_text": _("Cancel job"),
        },
    )
    def cancel(self, request, form, object_id):
        job = self.object_for_action(request, object_id)
        if job.is_finished:
            messages.warning(request, _("This job has already finished."))
        else:
            cancel_job(job)
            messages.success(request, _("%(job)s will stop.") % {"job": job})
        return self.back_to_change_page(request, job)
