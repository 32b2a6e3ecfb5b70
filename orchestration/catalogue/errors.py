"""The one exception the catalogue code raises for bad user input."""


class CatalogueInputError(Exception):
    """An input the user gave cannot be used; the message is meant for the user."""
