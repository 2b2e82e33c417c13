"""`datamix predict`: greedy answers of a trained run on a mix's short-answer questions, with VQA accuracy.

Each question is asked on its own, with its image and the short-answer instruction, through the same
`template.encode` as training (`generation=True`), as LLaVA's VQA evaluation does (docs/Evaluation.md of LLaVA: greedy,
vicuna_v1, the prompt appended). Two baselines are printed beside the accuracy, both computed on the evaluated
questions themselves, so they are upper bounds of what their strategy can score: the single most common
answer, and the most common answer of each question string (what a model that ignores the image can reach).

`blank_images` is the image ablation: every image is replaced by a blank one of the same size in the
processor's mean colour (what LLaVA pads with), so the model answers from the question alone. A model that
reads the image falls back to about the per-question prior; one that does not scores the same either way.
"""

from __future__ import annotations

import io
import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import torch

from datamix.prompts import FORMAT_PROMPTS, with_prompt
from datamix.train.config import TrainError
from datamix.train.data import mix_shard_counts, preprocess_image, read_samples
from datamix.train.template import IMAGE_TOKEN, encode
from datamix.train.vqa_eval import normalize_answer, vqa_accuracy

SHORT = FORMAT_PROMPTS["vqa_short"]


def short_questions(mix_dir: Path) -> Iterator[dict]:
    """Every round of every short-answer image sample, in mix order, with its reference answers."""
    shards = mix_shard_counts(mix_dir)
    for sample in read_samples(list(shards), shards):
        if sample.get("task") != "vqa_short" or not sample["_images"]:
            continue
        turns = sample["conversations"]
        all_refs = sample.get("meta", {}).get("answers")
        for k in range(0, len(turns) - 1, 2):
            question = turns[k]["value"].replace(IMAGE_TOKEN, "").strip()
            question = question.removesuffix(SHORT).strip()
            refs = all_refs[k // 2] if all_refs and len(all_refs) == len(turns) // 2 else [turns[k + 1]["value"]]
            yield {"id": sample["id"], "question": question, "answer": turns[k + 1]["value"], "references": refs,
                   "image": sample["_images"][0], "where": f"{sample['_shard']}: sample {sample['id']} image 0"}


@torch.no_grad()
def answer(model, tokenizer, processor, run_cfg: dict, question: str, image: bytes, max_new_tokens: int,
           where: str = "image") -> str:
    conv = [{"from": "human", "value": f"{IMAGE_TOKEN}\n{with_prompt(question, SHORT)}"}]
    return generate(model, tokenizer, processor, run_cfg, conv, image, max_new_tokens, where)


@torch.no_grad()
def generate(model, tokenizer, processor, run_cfg: dict, conversations: list[dict], image: bytes | None,
             max_new_tokens: int, where: str = "image") -> str:
    """The greedy answer to the last human turn of `conversations` (with its image, if any)."""
    if model.config.model_type == "llava_next" and image is not None:  # an HD run (hd.py): its own tiles
        from datamix.train.hd import generation_inputs

        inputs = generation_inputs(model, tokenizer, processor, run_cfg, conversations, image)
    else:
        enc = encode(tokenizer, conversations, template=run_cfg["template"],
                     image_seq_length=model.config.image_seq_length, image_token_id=model.config.image_token_id,
                     max_length=run_cfg["model_max_length"], generation=True)
        ids = torch.tensor([enc.input_ids])
        inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        if enc.n_images:  # a text-only prompt passes no pixel_values at all (None trips Llava's generate)
            inputs["pixel_values"] = preprocess_image(image, processor, run_cfg["image_aspect"], where)[None]
    out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()


def blank_like(data: bytes, processor, where: str = "image") -> bytes:
    """A PNG of the same size as the image `data`, every pixel the processor's mean colour."""
    from PIL import Image

    from datamix.train.data import decode_image

    size = decode_image(data, where).size
    buf = io.BytesIO()
    Image.new("RGB", size, tuple(int(x * 255) for x in processor.image_mean)).save(buf, "PNG")
    return buf.getvalue()


def predict(run_dir: Path, mix_dir: Path, *, n: int = 50, max_new_tokens: int = 16, blank_images: bool = False,
            echo=print) -> dict:
    """Answer the first `n` short-answer questions of the mix; print and return accuracy and baselines."""
    from transformers.utils import logging as hf_logging

    from datamix.train.model import load_model
    from datamix.train.setup import load_processor, run_config
    from datamix.train.tokenizer import load_tokenizer

    hf_logging.disable_progress_bar()
    run_root, model_dir = model_folders(Path(run_dir))
    run_cfg = run_config(run_root)
    model, tokenizer, processor = load_model(model_dir).eval(), load_tokenizer(run_root), load_processor(run_root)
    rows = []
    for q in short_questions(Path(mix_dir)):
        if len(rows) >= n:
            break
        image, where = q.pop("image"), q.pop("where")
        if blank_images:
            image = blank_like(image, processor, where)
        pred = answer(model, tokenizer, processor, run_cfg, q["question"], image, max_new_tokens, where)
        rows.append({**q, "prediction": pred, "accuracy": vqa_accuracy(pred, q["references"])})
        if len(rows) <= 10:
            echo(f"  {q['question'][:50]:<50} -> {pred[:30]!r:<32} (answer {q['answer']!r})")
    if not rows:
        raise TrainError(f"{mix_dir}: no short-answer (vqa_short) image questions to evaluate")
    summary = {**summarize(rows), "blank_images": blank_images}
    name = "predictions-blank-images.jsonl" if blank_images else "predictions.jsonl"
    (Path(run_dir) / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    what = "VQA accuracy with blank images (ablation)" if blank_images else "VQA accuracy"
    echo(f"{what} {summary['accuracy']:.1%} on {summary['questions']} questions | majority answer "
         f"{summary['majority_baseline']:.1%} ({summary['majority_answer']!r}) | per-question majority "
         f"{summary['question_prior_baseline']:.1%} | mean answer length {summary['mean_answer_words']:.2f} words")
    return summary


def model_folders(path: Path) -> tuple[Path, Path]:
    """(run folder, model folder) of a finished run (its final model) or of one of its checkpoints/step-N."""
    from datamix.train.checkpoint import checkpoint_dirs

    if (path / "run.json").is_file():
        if (path / "config.json").is_file():
            return path, path
        found = checkpoint_dirs(path)
        hint = f"give one of its checkpoints, e.g. {found[-1]}" if found else "and no checkpoint either"
        raise TrainError(f"{path}: no final model (config.json missing: the run did not finish); {hint}")
    if path.parent.name == "checkpoints" and (path.parent.parent / "run.json").is_file():
        return path.parent.parent, path
    raise TrainError(f"{path}: no run.json; give the --out folder of a `datamix train` run or one of its "
                     f"checkpoints/step-N folders")


def summarize(rows: list[dict]) -> dict:
    golds = [normalize_answer(r["answer"]) for r in rows]
    majority, _ = Counter(golds).most_common(1)[0]
    by_question = defaultdict(Counter)
    for r, g in zip(rows, golds):
        by_question[r["question"]][g] += 1
    prior = {q: c.most_common(1)[0][0] for q, c in by_question.items()}
    mean = lambda xs: sum(xs) / len(xs)
    return {"questions": len(rows), "accuracy": mean([r["accuracy"] for r in rows]),
            "majority_answer": majority,
            "majority_baseline": mean([vqa_accuracy(majority, r["references"]) for r in rows]),
            "question_prior_baseline": mean([vqa_accuracy(prior[r["question"]], r["references"]) for r in rows]),
            "mean_answer_words": mean([len(r["prediction"].split()) for r in rows])}
