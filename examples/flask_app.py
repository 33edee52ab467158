"""The seed experiment: a Flask app in debug mode with three atexit handlers.

``debug=True`` starts werkzeug's reloader, so ``python flask_app.py`` is two
processes: a monitor (the parent) that re-runs this file as a child with
``WERKZEUG_RUN_MAIN=true``.  Both import this module, so both register the
handlers.  ``GET /user/<name>`` makes the serving process call ``os._exit(0)``
for any name but Tom, as in the original write-up.
"""

import atexit
import os
import time

from flask import Flask

app = Flask(__name__)
PORT = int(os.environ.get("PORT", "5000"))


@atexit.register
def shutdown() -> None:
    print("shutdown: closing the database", flush=True)
    time.sleep(0.5)  # the seed slept 1 s: long enough to be cut off by a Ctrl-C


@atexit.register
def shutdown2() -> None:
    print("shutdown2: flushing the cache", flush=True)


@atexit.register
def shutdown3() -> None:
    print("shutdown3: saving state", flush=True)


@app.route("/")
def hello() -> str:
    return "Hi"


@app.route("/user/<username>")
def user(username: str) -> str:
    if username == "Tom":
        return f"Hello {username}"
    print("I will use OS EXIT!!", flush=True)
    os._exit(0)


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=PORT, debug=True)
