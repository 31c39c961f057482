"""Errors a user can act on. The command line prints them without a traceback."""


class MMFace4DError(Exception):
    """Base of every error that names a file or input and what is wrong with it."""


class FormatError(MMFace4DError, ValueError):
    """A file does not hold what its format promises (names the file and the problem)."""
