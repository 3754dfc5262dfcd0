from operations.services.jobs import (
    cancel_job,
    claim_job,
    create_job,
    finish_job,
    job_payload,
    report_progress,
)

__all__ = ["cancel_job", "claim_job", "create_job", "finish_job", "job_payload", "report_progress"]
