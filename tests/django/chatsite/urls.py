from django.urls import include, path
from rest_framework_simplejwt.views import TokenRefreshView

from platform_app import testing, views

urlpatterns = [
    path("api/token/", views.DeviceTokenObtainPairView.as_view(), name="token_obtain_pair"),
    path("api/token/refresh/", TokenRefreshView.as_view(), name="token_refresh"),
    path("api/content/chat-service/", include("platform_app.urls")),
    path("__test__/calls", testing.calls, name="test_calls"),
    path("__test__/reset", testing.reset, name="test_reset"),
]
