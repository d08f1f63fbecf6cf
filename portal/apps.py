from django.apps import AppConfig


class PortalConfig(AppConfig):
    """The project package doubles as an app so it can hold the operators' management commands
    (deploy files, images, volumes, the dataset account)."""

    name = "portal"
    verbose_name = "CFPS JupyterHub"
