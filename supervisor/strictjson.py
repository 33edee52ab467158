"""Every JSON document gsup writes is strict UTF-8 JSON, with the exact bytes of non-UTF-8 text kept.

An argument that is not UTF-8 (``gsup run app.py $'\\xff'``) reaches Python as
a string with lone surrogates (``"\\udcff"``, PEP 383), which ``json.dumps``
writes as ``"\\udcff"``: valid JSON syntax that strict parsers (jq, Rust's
serde, Go) reject or silently mangle.  So :func:`dumps` writes such a string
readably, each undecodable byte as ``\\xff`` (a backslash, ``x``, two hex
digits), and adds a sibling field named ``<field>_b64`` with its exact bytes in
base64; for a list of strings (``command``, ``argv``), ``<field>_b64`` is a list
of the same length, one base64 string per item.  The sibling appears only when
needed, and readers that do not know it see the readable text.  :func:`loads`
undoes this, so gsup reading its own documents gets back the very strings.

Standard library only and nothing imported at start-up beyond json: ``gsup ps``
reads session files through it.
"""

from __future__ import annotations

import json

TYPE_CHECKING = False  # typing itself costs a tenth of Python's start-up; mypy knows this name
if TYPE_CHECKING:
    from typing import Any

SUFFIX = "_b64"


def dumps(document: Any, **options: Any) -> str:
    """``json.dumps(document, **options)``, strict: no lone surrogate anywhere (see the module)."""
    return json.dumps(clean(document), **options)


def loads(text: str | bytes) -> Any:
    """``json.loads``, with every ``<field>_b64`` sibling put back into its field (the exact strings)."""
    return restore(json.loads(text))


def clean(value: Any) -> Any:
    """``value`` with every string made valid Unicode, and ``_b64`` siblings where that lost bytes."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out[_text(str(key))] = clean(item)
            if _needs_bytes(item):
                out[f"{key}{SUFFIX}"] = _b64(item) if isinstance(item, str) else [_b64(str(i)) for i in item]
        return out
    if isinstance(value, (list, tuple)):
        return [clean(item) for item in value]
    return _text(value) if isinstance(value, str) else value


def restore(value: Any) -> Any:
    """The inverse of :func:`clean`: each field that has a well-formed ``_b64`` sibling gets its exact text."""
    if isinstance(value, dict):
        out = {key: restore(item) for key, item in value.items()}
        for key in [k for k in out if k.endswith(SUFFIX) and k[: -len(SUFFIX)] in out]:
            exact = _unb64(out[key])
            if exact is not None:
                out[key[: -len(SUFFIX)]] = exact
                del out[key]
        return out
    if isinstance(value, list):
        return [restore(item) for item in value]
    return value


def _bad(text: str) -> bool:
    """Does ``text`` hold a surrogate (so it is not valid Unicode text)?"""
    try:
        text.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def _from_bytes(text: str) -> bool:
    """Is ``text`` an OS string that held bytes not UTF-8 (PEP 383's surrogates, and only those)?"""
    if not _bad(text):
        return False
    try:
        text.encode("utf-8", "surrogateescape")
        return True
    except UnicodeEncodeError:
        return False  # a lone surrogate made in Python, from no bytes: shown, nothing to keep


def _needs_bytes(item: Any) -> bool:
    if isinstance(item, str):
        return _from_bytes(item)
    return isinstance(item, (list, tuple)) and all(isinstance(i, str) for i in item) and any(map(_from_bytes, item))


def _text(text: str) -> str:
    """``text`` as valid Unicode: each byte that was not UTF-8 written ``\\xNN``."""
    if not _bad(text):
        return text
    raw = text.encode("utf-8", "surrogateescape" if _from_bytes(text) else "surrogatepass")
    return raw.decode("utf-8", "backslashreplace")


def _b64(text: str) -> str:
    """The exact bytes of an OS string; of any other, its text as written."""
    import base64

    raw = text.encode("utf-8", "surrogateescape") if _from_bytes(text) else _text(text).encode("utf-8")
    return base64.b64encode(raw).decode("ascii")


def _unb64(value: Any) -> str | list[str] | None:
    """The exact text a ``_b64`` sibling holds; None if it is not one gsup wrote."""
    import base64
    import binascii

    try:
        if isinstance(value, str):
            return base64.b64decode(value, validate=True).decode("utf-8", "surrogateescape")
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return [base64.b64decode(v, validate=True).decode("utf-8", "surrogateescape") for v in value]
    except (binascii.Error, ValueError):
        return None
    return None
