#!/usr/bin/python3
"""Test-only stand-in for the platform's Django site. Run with /usr/bin/python3 (Debian's Django)."""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
