"""The one exception family the CLI turns into a one-line message and exit code 1."""


class PgolfError(Exception):
    """Bad input or a failed precondition; the message names the file or value and what was expected."""
