"""The converter registry: one dict, keyed by the id used on the command line and in recipes."""

from __future__ import annotations

from datamix.converters.aokvqa import AOKVQA
from datamix.converters.base import Converter, ConvertOptions
from datamix.converters.gqa import GQA
from datamix.converters.llava import Llava
from datamix.converters.ocrvqa import OCRVQA
from datamix.converters.okvqa import OKVQA
from datamix.converters.refcoco import RefCOCO
from datamix.converters.sharegpt import ShareGPT
from datamix.converters.textcaps import TextCaps
from datamix.converters.vg import VG
from datamix.converters.vqav2 import VQAv2
from datamix.errors import ConverterError

CONVERTERS: dict[str, type[Converter]] = {
    c.id: c for c in (VQAv2, GQA, ShareGPT, Llava, OKVQA, AOKVQA, OCRVQA, TextCaps, RefCOCO, VG)}


def get_converter(converter_id: str, options: ConvertOptions | None = None) -> Converter:
    try:
        cls = CONVERTERS[converter_id]
    except KeyError:
        known = ", ".join(sorted(CONVERTERS))
        raise ConverterError(f"unknown converter {converter_id!r}; known converters: {known}") from None
    return cls(options)


__all__ = ["CONVERTERS", "Converter", "ConvertOptions", "get_converter"]
