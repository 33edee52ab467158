"""A WSGI app (gunicorn's sync workers) and one atexit handler."""
import atexit


def app_bye():
    pass


atexit.register(app_bye)


def app(environ, start_response):
    start_response("200 OK", [])
    return [b"ok"]
