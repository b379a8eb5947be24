import secrets

from django.shortcuts import get_object_or_404
from rest_framework import status
from rest_framework.decorators import api_view
from rest_framework.response import Response
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.views import TokenObtainPairView

from .authentication import DEVICE_COOKIE
from .models import Enrollment, Lesson, User


class DeviceTokenObtainPairView(TokenObtainPairView):
    """SimpleJWT's login, plus a fresh device cookie recorded against the user."""

    def post(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        try:
            serializer.is_valid(raise_exception=True)
        except TokenError as e:
            raise InvalidToken(e.args[0])

        device_id = secrets.token_urlsafe(24)
        # update() rather than save(): concurrent logins must not clobber other columns.
        User.objects.filter(pk=serializer.user.pk).update(device_id=device_id)

        response = Response(serializer.validated_data, status=status.HTTP_200_OK)
        response.set_cookie(DEVICE_COOKIE, device_id, httponly=True, samesite="Lax", path="/")
        return response


@api_view(["GET"])
def user_detail(request, user_id):
    user = get_object_or_404(User, pk=user_id)
    return Response(
        {
            "id": user.id,
            "email": user.email,
            "is_mentor": user.is_mentor,
            "first_name": user.first_name,
            "last_name": user.last_name,
        }
    )


@api_view(["GET"])
def lesson_detail(request, lesson_id):
    lesson = get_object_or_404(Lesson.objects.select_related("course__mentor"), pk=lesson_id)
    return Response(
        {
            "id": lesson.id,
            "course_id": lesson.course_id,
            # The mentor's USER id, unlike check-access below.
            "teacher_id": lesson.course.mentor.user_id,
        }
    )


def _int_param(request, name):
    try:
        return int(request.query_params[name])
    except (KeyError, ValueError):
        return None


@api_view(["GET"])
def check_access(request):
    lesson_id = _int_param(request, "lesson_id")
    student_id = _int_param(request, "student_id")
    if lesson_id is None or student_id is None:
        return Response(
            {"detail": "lesson_id and student_id are required integers"}, status=status.HTTP_400_BAD_REQUEST
        )

    lesson = get_object_or_404(Lesson.objects.select_related("course"), pk=lesson_id)
    enrollment = Enrollment.objects.filter(student_id=student_id, course_id=lesson.course_id).first()
    if enrollment is None:
        return Response({"allowed": False, "reason": "not enrolled in this course"}, status=status.HTTP_403_FORBIDDEN)
    if not enrollment.is_active:
        return Response({"allowed": False, "reason": "enrollment is not active"}, status=status.HTTP_403_FORBIDDEN)
    return Response(
        {
            "allowed": True,
            "course_id": lesson.course_id,
            # The mentor RECORD id, as the real site answers; it is not a user id.
            "teacher_id": lesson.course.mentor_id,
            "student_id": student_id,
        }
    )
