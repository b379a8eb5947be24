"""Migrate the database and create the fixed cast the tests rely on.

The cast is mirrored in tests/helpers/django.ts (DJANGO_CAST); change both together.
"""
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction

from platform_app.models import Course, Enrollment, Lesson, Mentor, User

MENTORS = [
    # (user id, mentor record id, course id, lesson ids). Record ids start at 500 so that code
    # confusing a mentor record id with a user id fails loudly in tests.
    (10, 500, 1, [5, 7]),
    (11, 501, 2, [6]),
]
STUDENTS = [
    # (user id, course id or None, enrollment active)
    (15, 1, True),
    (16, 1, True),
    (17, 1, False),
    (18, None, False),
    (19, 2, True),
]


def _user(user_id, *, is_mentor, first_name, last_name):
    return User.objects.create_user(
        id=user_id,
        username=f"u{user_id}",
        password=f"pw-{user_id}",
        email=f"u{user_id}@example.test",
        first_name=first_name,
        last_name=last_name,
        is_mentor=is_mentor,
    )


class Command(BaseCommand):
    help = "Apply migrations, then create the fixed test cast (idempotent)."

    def handle(self, *args, **options):
        call_command("migrate", verbosity=0, interactive=False, skip_checks=True)
        if User.objects.exists():
            self.stdout.write("already seeded")
            return
        with transaction.atomic():
            for user_id, mentor_id, course_id, lesson_ids in MENTORS:
                user = _user(user_id, is_mentor=True, first_name="Mentor", last_name=str(user_id))
                mentor = Mentor.objects.create(id=mentor_id, user=user)
                course = Course.objects.create(id=course_id, title=f"Course {course_id}", mentor=mentor)
                for lesson_id in lesson_ids:
                    Lesson.objects.create(id=lesson_id, title=f"Lesson {lesson_id}", course=course)
            for user_id, course_id, active in STUDENTS:
                student = _user(user_id, is_mentor=False, first_name="Student", last_name=str(user_id))
                if course_id is not None:
                    Enrollment.objects.create(student=student, course_id=course_id, is_active=active)
        self.stdout.write("seeded")
