from operations.models import TaskJob


def jobs_for(user):
    return TaskJob.objects.for_user(user).select_related("created_by")
