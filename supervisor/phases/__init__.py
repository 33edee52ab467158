"""The phases of one ``gsup run``, each a small unit; ``supervisor/runner.py`` runs them in order.

plan (options resolved once) → start (launch) → ready (wait until ready) →
act (send per plan, escalate) → finish (drain, report), all turning one event
loop (``loop.py``); every signal sent goes through ``send.py``.
"""
