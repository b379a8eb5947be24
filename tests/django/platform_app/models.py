from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    is_mentor = models.BooleanField(default=False)
    # One device per user: each login overwrites it, which invalidates the previous device's cookie.
    device_id = models.CharField(max_length=64, blank=True, default="")


class Mentor(models.Model):
    """A mentor record, separate from the user on purpose: its id is not the mentor's user id."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="mentor")


class Course(models.Model):
    title = models.CharField(max_length=200)
    mentor = models.ForeignKey(Mentor, on_delete=models.PROTECT, related_name="courses")


class Lesson(models.Model):
    title = models.CharField(max_length=200)
    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="lessons")


class Enrollment(models.Model):
    student = models.ForeignKey(User, on_delete=models.CASCADE, related_name="enrollments")
    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="enrollments")
    is_active = models.BooleanField(default=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["student", "course"], name="one_enrollment_per_course")]
