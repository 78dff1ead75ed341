"""Exceptions that the CLI turns into one-line messages and exit codes (never tracebacks)."""

from __future__ import annotations


class HarnessError(Exception):
    """A user-facing error: the message says what is wrong and how to fix it."""

    exit_code = 1


class StopRun(HarnessError):
    """Raised by a part that cannot go on (a device profile's memory cap exceeded, a worker
    process gone): the run stops with this one-line message and exit status 1 instead of
    recording the failure as every remaining sample's error. Finished samples are kept, and
    the same command resumes once the cause is fixed."""

    exit_code = 1


class PluginError(HarnessError):
    """A plugin could not be loaded, or two plugins claim the same name."""

    exit_code = 2


class ManifestError(HarnessError):
    """A manifest (or an override of it) is invalid. ``problems`` holds one line each."""

    exit_code = 2

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class RunDirError(HarnessError):
    """The run directory cannot be used (another manifest's run, unreadable files)."""

    exit_code = 2


class InputError(HarnessError):
    """A file the manifest names is unusable (bad line, missing field). Raised while setting
    parts up, before any sample is played; the message names the file, the line and the fix."""

    exit_code = 2
