"""aiohttp's run_app with on_startup, on_shutdown and on_cleanup, and one atexit handler."""
import atexit
import sys

from aiohttp import web


def app_bye():
    pass


async def on_startup(app):
    pass


async def on_shutdown(app):
    pass


async def on_cleanup(app):
    pass


atexit.register(app_bye)
app = web.Application()
app.on_startup.append(on_startup)
app.on_shutdown.append(on_shutdown)
app.on_cleanup.append(on_cleanup)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
