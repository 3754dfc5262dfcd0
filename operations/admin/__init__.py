"""Operations in the back office: background jobs, remote commands and their batches, alarms (with the
live badge in the sidebar), notification channels and maintenance windows.

Every action calls the service the staff API calls (`operations.services`). Elements that change while
a page is open carry `data-live` attributes; static/coffeeshop/live.js updates them from the staff
socket (job.progress, command.updated, batch.updated, alarm.*).
"""

from operations.admin import alarms, commands, device_commands, device_story, jobs, reports, sidebar

__all__ = ["alarms", "commands", "device_commands", "device_story", "jobs", "reports", "sidebar"]
