class IdConverter:
    """A positive database id. Longer numbers are simply not found (404), never a 500."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value) -> str:
        return str(value)
