"""WSGI entry point for gunicorn; the settings module follows APP_PROFILE in .env."""

import os

from django.core.wsgi import get_wsgi_application

from portal.settings import module_for_profile

os.environ.setdefault("DJANGO_SETTINGS_MODULE", module_for_profile())
application = get_wsgi_application()
