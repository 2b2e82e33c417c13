"""Placeholder: being written."""

from datamix.converters.base import Converter


class Llava(Converter):
    id = "llava"
    description = "llava"

    def convert(self, files, ledger):
        raise NotImplementedError
