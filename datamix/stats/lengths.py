"""`--tokenizer PATH`: lengths in tokens of a local Hugging Face tokenizer instead of words (words.py).

The `<image>` placeholder is removed before encoding (scan.py): the model sees image features in its
place, not text. Tokens are counted without special tokens, the way a turn adds to a sequence.
"""

from __future__ import annotations

from pathlib import Path

from datamix.errors import InputError


def load_tokenizer(path: str | Path):
    """A `tokenizers.Tokenizer` from a local tokenizer.json or a Hugging Face tokenizer folder."""
    from tokenizers import Tokenizer

    path = Path(path)
    file = path / "tokenizer.json" if path.is_dir() else path
    if file.is_file():
        try:
            return Tokenizer.from_file(str(file))
        except Exception as exc:  # noqa: BLE001 - a bad file is the user's input: one clear line
            raise InputError(f"{file}: not a Hugging Face tokenizer file ({exc})") from None
    if path.is_dir():  # a slow (sentencepiece-only) tokenizer: let transformers convert it
        try:
            from transformers import AutoTokenizer

            return AutoTokenizer.from_pretrained(str(path), use_fast=True, local_files_only=True).backend_tokenizer
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"{path}: no usable tokenizer here ({exc})") from None
    raise InputError(f"{path}: no such tokenizer file or folder")
