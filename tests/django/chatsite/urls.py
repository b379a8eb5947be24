import os

from django.http import HttpResponseRedirect
from django.urls import include, path, re_path
from rest_framework_simplejwt.views import TokenRefreshView

from platform_app import testing, views

# The real site serves its API under a language prefix (/uz/api/content/...) and redirects an
# unprefixed path there with 302. CHAT_LANGUAGE_PREFIX turns that on; the test plumbing and
# login stay unprefixed either way.
PREFIX = os.environ.get("CHAT_LANGUAGE_PREFIX", "").strip("/")


def _to_prefixed(request, rest):
    query = request.META.get("QUERY_STRING", "")
    return HttpResponseRedirect(f"/{PREFIX}/api/content/{rest}" + (f"?{query}" if query else ""))


urlpatterns = [
    path("api/token/", views.DeviceTokenObtainPairView.as_view(), name="token_obtain_pair"),
    path("api/token/refresh/", TokenRefreshView.as_view(), name="token_refresh"),
    path("__test__/calls", testing.calls, name="test_calls"),
    path("__test__/reset", testing.reset, name="test_reset"),
]

if PREFIX:
    urlpatterns += [
        path(f"{PREFIX}/api/content/chat-service/", include("platform_app.urls")),
        re_path(r"^api/content/(?P<rest>.*)$", _to_prefixed),
    ]
else:
    urlpatterns.append(path("api/content/chat-service/", include("platform_app.urls")))
