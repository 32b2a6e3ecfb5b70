"""The one exception the catalogue code raises for bad user input."""


class CatalogueInputError(Exception):
    """An input the user gave cannot be used; the message is meant for the user.

    ``problems`` lists each problem separately when there are several (a form shows each one).
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])
