from django.apps import AppConfig


class PlatformCoreConfig(AppConfig):
    name = "platform_core"
    verbose_name = "Worker platform"

    def ready(self):
        from platform_core.tasks import checks  # noqa: F401  (registers the system checks)
