"""The one exception family whose messages are written for users.

Every layer raises a subclass of :class:`EgoRecallError` for bad input or a missing resource; the CLI prints
its message as one line and the UI shows it, while any other exception is a bug and keeps its traceback.
"""


class EgoRecallError(Exception):
    """A problem the user can act on; ``str(err)`` is a complete, readable sentence."""


class EncoderUnavailable(EgoRecallError):
    """The requested encoder cannot be built here; the message says what is missing and how to fix it."""
