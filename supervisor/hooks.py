"""Run a pod's ``lifecycle.preStop`` hook as the kubelet does: before SIGTERM, within the grace.

The kubelet runs the hook, waits for it (at most the whole grace period, which
the hook's time counts against), and only then sends SIGTERM.  gsup does the
same on this host: ``exec`` runs the command here (a container would run it in
its own namespaces), ``sleep`` waits, ``httpGet`` asks ``localhost:PORT/PATH``.
The outcome goes into the report (``container.pre_stop``); a hook that fails
does not stop the stop sequence, as with the kubelet.
"""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request

from supervisor.containers import PreStop


def run_pre_stop(hook: PreStop, grace: float) -> dict[str, object]:
    """Run ``hook`` for at most ``grace`` seconds; what ran, how long it took, its outcome."""
    began = time.monotonic()
    outcome = _run(hook, max(grace, 0.001))
    return {"hook": str(hook), "took": round(time.monotonic() - began, 3), "outcome": outcome}


def _run(hook: PreStop, grace: float) -> str:
    if hook.kind == "sleep":
        time.sleep(min(hook.seconds, grace))  # the kubelet's sleep hook: a wait, nothing to watch
        return "slept" if hook.seconds <= grace else f"cut short by the grace ({grace:g}s)"
    if hook.kind == "exec":
        try:
            done = subprocess.run(list(hook.command), timeout=grace, check=False,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return f"still running when the grace ({grace:g}s) ran out: killed"
        except OSError as err:
            return f"could not start: {err.strerror}"
        return f"exited {done.returncode}"
    url = f"http://127.0.0.1:{hook.port}{hook.path}"
    try:
        with urllib.request.urlopen(url, timeout=grace) as answer:
            return f"HTTP {answer.status}"
    except urllib.error.HTTPError as err:
        return f"HTTP {err.code}"
    except (urllib.error.URLError, OSError) as err:
        return f"failed: {getattr(err, 'reason', err)}"
