from platform_core.worker_command import WorkerCommand


class Command(WorkerCommand):
    queue = "api"
