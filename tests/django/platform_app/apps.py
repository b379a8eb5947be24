from django.apps import AppConfig


class PlatformAppConfig(AppConfig):
    name = "platform_app"
    default_auto_field = "django.db.models.AutoField"
