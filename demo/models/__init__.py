"""Everything that makes OpenVINO IR folders: cache, conversion, preparation, vocabulary trimming, pruning."""


class PrepareError(Exception):
    """A problem the user can fix; its message is printed as one line."""
