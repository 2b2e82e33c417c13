"""Placeholder: being written."""

from datamix.converters.base import Converter


class ShareGPT(Converter):
    id = "sharegpt"
    description = "sharegpt"

    def convert(self, files, ledger):
        raise NotImplementedError
