from django.apps import AppConfig


class DeployConfig(AppConfig):
    """The operators' app: the management commands that render the deploy files (Nginx, systemd, firewall),
    build the notebook image, set up volumes and the data folder, provision the dataset account, and back
    up, restore and check the system; the templates they render live beside them in deploy/."""

    name = "deploy"
    verbose_name = "CFPS JupyterHub deployment"
