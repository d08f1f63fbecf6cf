"""JupyterHub configuration for CFPS JupyterHub, importable and testable without starting a hub."""
