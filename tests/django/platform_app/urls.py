from django.urls import path

from . import views

urlpatterns = [
    path("users/<int:user_id>/", views.user_detail, name="chat_user_detail"),
    path("lesson/<int:lesson_id>/detail/", views.lesson_detail, name="chat_lesson_detail"),
    path("check-access/", views.check_access, name="chat_check_access"),
]
