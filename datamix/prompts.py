"""LLaVA-1.5 response-format prompts (paper Tab. 7, eval Tab. 8), keyed by task.

The instruction is joined to the human question with a newline, exactly as the released
`llava_v1_5_mix665k.json` does: `"<question>\\nAnswer the question using a single word or phrase."`.
The strings use the ASCII apostrophe, as LLaVA's code does (the paper prints a typographic one).
"""

from __future__ import annotations

from enum import Enum

from datamix.schema import Sample

FORMAT_PROMPTS: dict[str, str] = {
    "vqa_short": "Answer the question using a single word or phrase.",
    "mcq": "Answer with the option's letter from the given choices directly.",
    "caption": "Provide a one-sentence caption for the provided image.",
}
SEPARATOR = "\n"


class PromptPolicy(str, Enum):
    # What public copies of the released 665K mix show for GQA and OCR-VQA (LLaVA issues #1283 and #1632: not
    # documented for VQAv2); the default.
    first_turn = "first_turn"
    every_turn = "every_turn"
    none = "none"


def with_prompt(question: str, prompt: str) -> str:
    """Append `prompt` unless the question already carries it (idempotent)."""
    if question.rstrip().endswith(prompt):
        return question
    return f"{question}{SEPARATOR}{prompt}"


def apply_format_prompt(sample: Sample, policy: PromptPolicy | str) -> Sample:
    """Append the task's format prompt to the human turns the policy names; record it in `meta`.

    Tasks without a prompt (conversation, text, grounding) are left alone whatever the policy.
    """
    policy = PromptPolicy(policy)
    prompt = FORMAT_PROMPTS.get(sample.task)
    if prompt is None or policy is PromptPolicy.none:
        return sample
    first_human_done = False
    for turn in sample.conversations:
        if turn["from"] != "human":
            continue
        if policy is PromptPolicy.every_turn or not first_human_done:
            turn["value"] = with_prompt(turn["value"], prompt)
        first_human_done = True
    sample.meta["format_prompt"] = prompt
    sample.meta["format_prompt_policy"] = policy.value
    return sample
