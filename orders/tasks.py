from celery import shared_task

from orders.services.export import run_orders_export


@shared_task(name="orders.export_orders", acks_late=True)
def export_orders(job_id: int) -> int | None:
    job = run_orders_export(job_id)
    return job.result_rows if job else None
