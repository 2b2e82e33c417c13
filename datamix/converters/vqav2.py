"""Placeholder: being written."""

from datamix.converters.base import Converter


class VQAv2(Converter):
    id = "vqav2"
    description = "vqav2"

    def convert(self, files, ledger):
        raise NotImplementedError
