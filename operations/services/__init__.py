from operations.services.jobs import (
    JobSuperseded,
    cancel_job,
    claim_job,
    create_job,
    finish_job,
    job_payload,
    reclaim_stale_jobs,
    report_progress,
)

__all__ = [
    "JobSuperseded",
    "cancel_job",
    "claim_job",
    "create_job",
    "finish_job",
    "job_payload",
    "reclaim_stale_jobs",
    "report_progress",
]
