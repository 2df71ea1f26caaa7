"""The one exception type for mistakes a user can fix (bad input, missing files).

The CLI prints such an error as a single line and exits with status 2; anything
else is a bug and keeps its traceback.
"""


class CircuitscopeError(Exception):
    """A problem with the user's input, stated in one line."""
