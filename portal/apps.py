from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Astronomy portal"

    def ready(self) -> None:
        from portal import cloud_summary, summary

        if cloud_summary.contribute not in summary.CONTRIBUTORS:
            summary.CONTRIBUTORS.insert(0, cloud_summary.contribute)
