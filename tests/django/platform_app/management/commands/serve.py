"""runserver with a deeper listen backlog.

Django's dev server listens with a backlog of 10, so a burst of 20 concurrent connections has SYNs
dropped and retried a second later: tests of burst behaviour would see phantom 1 s stalls.
"""
from django.core.management.commands.runserver import Command as RunserverCommand
from django.core.servers.basehttp import WSGIServer


class DeepBacklogWSGIServer(WSGIServer):
    request_queue_size = 256


class Command(RunserverCommand):
    help = "Start the dev server (threaded) with a listen backlog fit for concurrent test bursts."
    server_cls = DeepBacklogWSGIServer
