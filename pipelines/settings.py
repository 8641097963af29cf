"""What every command's settings share: the one error type for values no run can use, and
the check that a resumed run (or a reopened cache) was made with the same settings.

Each command's settings are a frozen dataclass whose fields hold the defaults (one comment
per field) and whose ``validate()`` raises ``SettingsError``; the CLI passes only the
options the user gave and turns a ``SettingsError`` into one line and exit status 2.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

#: how a changed setting is listed: "lr: 0.05 -> 0.1"
CHANGE = "{name}: {saved!r} -> {asked!r}"


class SettingsError(ValueError):
    """The settings are inconsistent, or do not fit the run directory or the cache."""


def _plain(value):
    """A tuple compares equal to the list a saved JSON (or checkpoint) gives back."""
    return list(value) if isinstance(value, tuple) else value


def changed_settings(
    saved: Mapping, asked: Mapping, *, resumable: Iterable[str] = (), only_asked: bool = False,
    change: str = CHANGE,
) -> str | None:
    """None when ``asked`` may continue what ``saved`` made; else one line listing each
    changed setting (sorted by name, formatted by ``change``), for the caller's message.

    Names in ``resumable`` may differ (paths, workers, ...). A name missing on one side
    counts as ``None``; ``only_asked`` compares only the names ``asked`` has, so that a
    setting a later version retired does not block a resume.
    """
    names = set(asked) if only_asked else set(saved) | set(asked)
    changed = sorted(
        name for name in names - set(resumable) if _plain(saved.get(name)) != _plain(asked.get(name))
    )
    if not changed:
        return None
    return ", ".join(change.format(name=name, saved=saved.get(name), asked=asked.get(name)) for name in changed)
