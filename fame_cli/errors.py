"""Errors a user can cause become one line and a non-zero exit status, wherever a command
raises them; anything else is a bug and keeps its traceback.

The commands catch their own errors where they can say more; this is the net under them
(e.g. a ground-truth file found damaged halfway through ``fame evaluate``, a full disk).
"""

from __future__ import annotations

import errno
import sys

#: the project's error types for bad input, by module; looked up only once one was raised, so
#: that this module imports nothing heavy (``fame --help`` stays fast)
USER_ERRORS = {
    "pipelines.data.cache": ("CacheError",),
    "pipelines.train.checkpoints": ("CheckpointError",),
    "pipelines.train.checkpoint_formats": ("CheckpointFormatError",),
    "pipelines.evaluate.settings": ("EvaluateError",),
    "pipelines.masks.ground_truth": ("GroundTruthError",),
    "pipelines.data.layouts.index": ("LayoutError",),
    "pipelines.settings": ("SettingsError",),
    "pipelines.data.video": ("VideoError",),
}
#: operating-system errors about a path, that the user can fix: what to do about each
SYSTEM_ERRNOS = {
    errno.ENOSPC: "free some space", errno.EDQUOT: "free some space",
    errno.EACCES: "fix the permissions or choose another path", errno.EPERM: "fix the permissions or choose another path",
    errno.EROFS: "choose a writable path", errno.ENOENT: "check the path", errno.ENOTDIR: "check the path",
    errno.EISDIR: "check the path", errno.ENAMETOOLONG: "choose a shorter path",
}
#: how torch re-raises an error of a DataLoader worker: its message holds the worker's traceback
WORKER_TRACEBACK = "Original Traceback (most recent call last):"


def user_error_types() -> tuple[type, ...]:
    """The user-error classes of the modules loaded so far (an unloaded one raised nothing)."""
    found = []
    for module_name, names in USER_ERRORS.items():
        module = sys.modules.get(module_name)
        found += [getattr(module, name) for name in names if module is not None and hasattr(module, name)]
    return tuple(found)


def one_line(message: str) -> str:
    """``message`` on one line; for an error re-raised from a loader worker, the worker's own
    message (the last line of the traceback torch puts into it, less the error's type)."""
    if WORKER_TRACEBACK in message:
        last = message.strip().splitlines()[-1]
        message = last.split(": ", 1)[1] if ": " in last else last
    return " ".join(message.splitlines()).strip()


def user_message(error: BaseException) -> str | None:
    """One line for an error the user can fix (None: a bug, let its traceback show)."""
    if isinstance(error, user_error_types()):
        return one_line(str(error)) or type(error).__name__
    if isinstance(error, OSError) and error.errno in SYSTEM_ERRNOS and error.filename:
        return (f"{error.filename}: {error.strerror}; {SYSTEM_ERRNOS[error.errno]}, then rerun the same command "
                "(finished work is kept)")
    return None
