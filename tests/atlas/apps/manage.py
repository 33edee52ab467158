"""Django's runserver with its autoreloader (the parent re-runs this file as the server), settings inline."""
import atexit
import sys

from django.conf import settings


def app_bye():
    pass


atexit.register(app_bye)
settings.configure(DEBUG=True, SECRET_KEY="atlas", ROOT_URLCONF=__name__, ALLOWED_HOSTS=["*"], INSTALLED_APPS=[])
urlpatterns: list = []

if __name__ == "__main__":
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
