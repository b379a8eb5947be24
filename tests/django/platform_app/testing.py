"""Test-only endpoints: no auth, never part of the real site."""
from django.http import HttpResponseNotAllowed, JsonResponse

from . import middleware


def calls(request):
    if request.method != "GET":
        return HttpResponseNotAllowed(["GET"])
    return JsonResponse(middleware.snapshot())


def reset(request):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    middleware.reset()
    return JsonResponse(middleware.snapshot())
