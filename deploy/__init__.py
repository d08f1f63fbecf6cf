"""Operators' tools: the templates of the generated deploy files, the gunicorn configuration and the process
supervisor of ./run.sh (supervise.py)."""
