"""Errors shared by every capability."""


class UserError(Exception):
    """A problem the user can fix; its message says what to do next.

    The CLI prints it as one line and exits non-zero, without a traceback.
    """
