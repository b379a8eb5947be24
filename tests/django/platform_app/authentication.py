from django.utils.crypto import constant_time_compare
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed

DEVICE_COOKIE = "device_id"


class DeviceJWTAuthentication(JWTAuthentication):
    """SimpleJWT plus the platform's one-device rule: a valid token is not enough, the request must
    also carry the device cookie set by the most recent login. This is why a client of this site
    has to forward the cookie, not just the bearer token."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is None:
            return None
        user, token = result
        cookie = request.COOKIES.get(DEVICE_COOKIE)
        if not cookie:
            raise AuthenticationFailed("Missing device_id cookie: log in on this device", code="device_missing")
        if not user.device_id or not constant_time_compare(cookie, user.device_id):
            raise AuthenticationFailed(
                "Unknown device_id: this account logged in on another device", code="device_mismatch"
            )
        return user, token
