#!/usr/bin/env python3
"""Django's command-line utility; the settings module follows APP_PROFILE in .env."""

import os
import sys


def main():
    from portal.config.filemodes import for_command
    from portal.settings import module_for_profile

    for_command(sys.argv)  # owner-only files under var/, except for commands that share theirs

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", module_for_profile())
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
