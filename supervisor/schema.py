"""The JSON Schemas of gsup's documents, shipped in the package.

``supervisor/schemas/report-1.json`` describes ``gsup.report/1`` and
``matrix-1.json`` describes ``gsup.matrix/1``.  They are data files, read with
``importlib.resources`` so they work from a wheel or a zip as well as from the
source tree, and gsup needs no schema library at run time: validating is the
consumer's business (the test suite does it with ``jsonschema``).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from supervisor.errors import GsupError

# name on the command line -> file under supervisor/schemas/
FILES = {"report": "report-1.json", "matrix": "matrix-1.json"}


def text(name: str) -> str:
    """The schema file ``name`` (``report`` or ``matrix``) exactly as shipped."""
    if name not in FILES:
        raise GsupError(f"unknown schema {name!r}: use {' or '.join(FILES)}")
    path = resources.files("supervisor").joinpath("schemas").joinpath(FILES[name])  # one name per call: 3.9's zip paths
    return path.read_text(encoding="utf-8")


def load(name: str) -> dict[str, Any]:
    """The schema ``name`` as a dict; its ``$id`` is its file name, which is what
    ``matrix-1.json``'s ``$ref`` to ``report-1.json`` resolves to."""
    return dict(json.loads(text(name)))
