"""Errors the storage floor raises, each saying what was wrong and where."""


class StorageError(RuntimeError):
    """Something the store could not do; nothing already stored was changed."""


class ImportFormatError(ValueError):
    """An import file is malformed: names the file and the line or entry."""

    def __init__(self, path: str, location: str, problem: str) -> None:
        super().__init__(f"{path}: {location}: {problem}")
        self.path = path
        self.location = location
        self.problem = problem
