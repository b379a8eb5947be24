"""Test-only endpoints: no auth, never part of the real site."""
import os

from django.http import HttpResponseNotAllowed, JsonResponse

from . import middleware


def _answer():
    response = JsonResponse(middleware.snapshot())
    # Lets the helper tell its own server from whatever else grabbed the port meanwhile.
    response["X-Test-Instance"] = os.environ.get("DJANGO_INSTANCE_ID", "")
    return response


def calls(request):
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET"])
    return _answer()


def reset(request):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    middleware.reset()
    return _answer()
