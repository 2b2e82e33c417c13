"""Placeholder: being written."""

from datamix.converters.base import Converter


class GQA(Converter):
    id = "gqa"
    description = "gqa"

    def convert(self, files, ledger):
        raise NotImplementedError
