"""Flask in debug mode: werkzeug's reloader (the parent) re-runs this file as the server (its child)."""
import atexit
import sys

from flask import Flask


def app_bye():
    pass


atexit.register(app_bye)
app = Flask(__name__)
app.run(host="127.0.0.1", port=int(sys.argv[1]), debug=True)
