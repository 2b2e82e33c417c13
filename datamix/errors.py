"""Exception hierarchy: every error a user can cause is a DatamixError with a message that says what to do."""


class DatamixError(Exception):
    """Base class: the CLI prints these as one line and exits with code 1."""


class SchemaError(DatamixError):
    """A sample breaks an invariant of the unified schema."""


class ConverterError(DatamixError):
    """An input file is not in the format its converter expects, or a converter id is unknown."""


class InputError(DatamixError):
    """A path given on the command line or in a recipe does not exist or matches nothing."""


class RecipeError(DatamixError):
    """A recipe is invalid; the message names the recipe file, the source and the fix."""


class BuildError(DatamixError):
    """A build cannot finish: a source over its error budget, too few usable samples, planned sources."""


class BusyError(DatamixError):
    """Another datamix process is writing to the same output folder."""


class EngineError(DatamixError):
    """The engine asked for cannot run: Ray not installed, a cluster that does not answer, a folder it cannot see."""
