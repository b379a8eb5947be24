#!/usr/bin/python3
"""Test-only stand-in for the platform's Django site. Run with /usr/bin/python3 (Debian's Django)."""
import os
import sys


def die_with_parent(parent_pid):
    """bun test exits without running exit hooks, so a test that forgets to stop the server would
    leave it running forever; let the kernel stop it when the test process goes away."""
    import ctypes
    import signal

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        sys.exit("parent process is gone")


if __name__ == "__main__":
    if os.environ.get("DJANGO_PARENT_PID"):
        die_with_parent(int(os.environ["DJANGO_PARENT_PID"]))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
