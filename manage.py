#!/usr/bin/env python3
"""Django's command-line utility; the settings module follows APP_PROFILE in .env."""

import os
import sys


def main():
    from portal.settings import module_for_profile

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", module_for_profile())
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
