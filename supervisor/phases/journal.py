"""The run's session logs: exits and actions appended as they happen, a failure to write noted, never fatal."""

from __future__ import annotations

from pathlib import Path

from supervisor.session import Session


class Journal:
    """The session, and what the report must call incomplete (``incomplete``)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.incomplete: list[str] = []

    def log(self, file: Path, record: dict[str, object]) -> None:
        """Append to a session log; a failure is noted in the report, never fatal."""
        try:
            self.session.append(file, record)
        except OSError as err:
            note = f"could not write {file.name}: {err.strerror}"
            if note not in self.incomplete:
                self.incomplete.append(note)

    def note(self, text: str) -> None:
        """Something the report must say it does not know."""
        self.incomplete.append(text)
