"""`datamix study`: the data-efficiency study of LLaVA-1.5 (§11.3: a random 50% of the mix keeps > 98% of full
performance) from ladder to table.

1. The nested ladder: `subsample` writes every rung below 1 into STUDY_DIR/ladder (rungs already there, complete,
   are reused); ratio 1 is the mix itself.
2. Every (rung, seed) is trained with the same recipe of stages: stage 1 (projector) then stage 2, the tiny
   model's tower optionally from `--vision-init` (frozen in both stages, as LLaVA-1.5's CLIP).
   `--match epochs` (the paper's setting) gives every rung the same number of passes over its own data, so a
   smaller rung trains fewer steps; `--match steps` (compute-matched, as DataComp) gives every rung the full
   mix's steps, so a small rung is repeated. The two answer different questions; the output says which.
3. Every run is evaluated on the same held-out mix, per task: VQA accuracy for short answers (`vqa_short`),
   letter accuracy for multiple choice (`mcq`), unigram F1 of the first answer for the others.
4. study.json, study.csv (rung, seed, samples, steps, metrics, each relative to the full mix of the same seed),
   study.png (relative performance against the data fraction, with the paper's 98% line) and index.html.

Resumable: a run is done when its `result.json` exists; a killed study re-runs only the others (a run cut
short is started again from scratch, in a fresh folder).
"""

from __future__ import annotations

import csv
import html
import json
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

from datamix.errors import InputError

MATCHES = ("epochs", "steps")
PAPER_LINE = 0.98


@dataclass
class StudyConfig:
    ratios: list[float]
    seeds: list[int] = field(default_factory=lambda: [0])
    match: str = "epochs"
    stage1_steps: int = 100  # stage 1 is a fixed short projector warm-up for every rung
    epochs: int = 1  # stage-2 passes over a rung (--match epochs) or over the full mix (--match steps)
    eval_n: int = 200  # questions per task
    vision_init: str | None = None
    train: dict = field(default_factory=dict)  # further TrainConfig fields, the same for every run

    def check(self) -> None:
        if self.match not in MATCHES:
            raise InputError(f"--match must be epochs or steps, got {self.match!r}")
        if not self.ratios or any(not 0 < r <= 1 for r in self.ratios):
            raise InputError(f"--ratios must be in (0, 1], got {self.ratios}")
        if not self.seeds:
            raise InputError("--seeds needs at least one seed")


def ladder(mix_dir: Path, ratios: list[float], out: Path, echo=print) -> dict[float, Path]:
    """ratio -> mix folder; rungs below 1 written by `subsample` unless a complete one is already there."""
    from datamix.mixdir import MANIFEST, load_manifest
    from datamix.subsample import rung_name, subsample

    name = load_manifest(mix_dir)["name"]
    rungs = {r: out / rung_name(name, r) for r in ratios if r < 1}
    missing = [r for r, path in rungs.items() if not (path / MANIFEST).is_file()]
    if missing:
        echo(f"ladder: writing rungs {', '.join(f'{r:g}' for r in missing)} -> {out}")
        subsample(mix_dir, missing, out)
    if len(missing) < len(rungs):
        echo(f"ladder: reusing rungs {', '.join(f'{r:g}' for r in rungs if r not in missing)}")
    return {**rungs, **({1.0: mix_dir} if 1.0 in ratios else {})}


def run_study(mix_dir: Path, eval_mix: Path, out: Path, cfg: StudyConfig, echo=print) -> dict:
    cfg.check()
    mix_dir, eval_mix, out = Path(mix_dir), Path(eval_mix), Path(out)
    ratios = sorted(set(cfg.ratios) | {1.0})  # the full mix is the reference of every relative figure
    rungs = ladder(mix_dir, ratios, out / "ladder", echo)
    full_steps = _stage2_steps(mix_dir, cfg) if cfg.match == "steps" else 0
    results = []
    for ratio in ratios:
        for seed in cfg.seeds:
            results.append(_run_once(rungs[ratio], ratio, seed, eval_mix, out / "runs" / f"r{ratio:g}-s{seed}", cfg,
                                     full_steps, echo))
    study = _table(results, cfg)
    _write(study, out)
    echo(f"study ({study['protocol']}): {len(results)} runs -> {out / 'study.csv'}, {out / 'study.png'}, "
         f"{out / 'index.html'}")
    for line in _lines(study):
        echo(line)
    return study


def _train_config(cfg: StudyConfig, stage: str, seed: int, **kw):
    from datamix.train.config import TrainConfig

    return TrainConfig(**{**cfg.train, "stage": stage, "seed": seed, "vision_init": cfg.vision_init, **kw}).for_stage()


def _stage2_steps(mix_dir: Path, cfg: StudyConfig) -> int:
    from datamix.train.data import mix_shard_counts
    from datamix.train.loop import plan_steps

    stage2 = _train_config(cfg, "finetune", 0, epochs=cfg.epochs)
    return plan_steps(stage2, mix_dir, sum(mix_shard_counts(mix_dir).values()))


def _run_once(rung: Path, ratio: float, seed: int, eval_mix: Path, run_dir: Path, cfg: StudyConfig, full_steps: int,
              echo) -> dict:
    from datamix.train.loop import train

    done = run_dir / "result.json"
    if done.is_file():
        echo(f"r{ratio:g} seed {seed}: done before, reused")
        return json.loads(done.read_text())
    shutil.rmtree(run_dir, ignore_errors=True)  # a run cut short starts again
    quiet = lambda *_: None  # noqa: E731
    echo(f"r{ratio:g} seed {seed}: training on {rung}")
    train(_train_config(cfg, "pretrain", seed, max_steps=cfg.stage1_steps), rung, run_dir / "stage1", echo=quiet)
    # Stage 2 starts from stage 1's model, which carries the (frozen) tower.
    stage2 = replace(_train_config(cfg, "finetune", seed, projector_from=str(run_dir / "stage1"), epochs=cfg.epochs,
                                   max_steps=full_steps), vision_init=None)
    state = train(stage2, rung, run_dir / "stage2", echo=quiet)
    metrics = evaluate(run_dir / "stage2", eval_mix, n=cfg.eval_n)
    from datamix.train.data import mix_shard_counts

    result = {"ratio": ratio, "seed": seed, "samples": sum(mix_shard_counts(rung).values()),
              "steps": state["step"], "metrics": metrics}
    done.write_text(json.dumps(result, indent=1) + "\n")
    echo(f"r{ratio:g} seed {seed}: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
    return result


def eval_items(mix_dir: Path, n: int) -> dict[str, list[dict]]:
    """Per task, up to `n` (first question, reference answer, image, references) of the held-out mix, in order."""
    from datamix.train.data import mix_shard_counts, read_samples
    from datamix.train.predict import short_questions

    items: dict[str, list[dict]] = defaultdict(list)
    for q in short_questions(mix_dir):
        if len(items["vqa_short"]) >= n:
            break
        items["vqa_short"].append(q)
    shards = mix_shard_counts(mix_dir)
    for sample in read_samples(list(shards), shards):
        task, turns = sample.get("task"), sample["conversations"]
        if task == "vqa_short" or len(turns) < 2 or len(items[task]) >= n:
            continue
        items[task].append({"conversations": turns[:1], "answer": turns[1]["value"],
                            "image": sample["_images"][0] if sample["_images"] else None})
    return {t: v for t, v in items.items() if v}


def evaluate(run_dir: Path, eval_mix: Path, *, n: int) -> dict[str, float]:
    """Per task: VQA accuracy (vqa_short), letter accuracy (mcq), unigram F1 (any other task)."""
    import torch

    from datamix.train.model import load_model
    from datamix.train.predict import answer, generate
    from datamix.train.setup import load_processor, run_config
    from datamix.train.tokenizer import load_tokenizer
    from datamix.train.vqa_eval import vqa_accuracy

    run_cfg = run_config(run_dir)
    model, tok, proc = load_model(run_dir).eval(), load_tokenizer(run_dir), load_processor(run_dir)
    scores = {}
    with torch.no_grad():
        for task, items in eval_items(Path(eval_mix), n).items():
            if task == "vqa_short":
                got = [vqa_accuracy(answer(model, tok, proc, run_cfg, q["question"], q["image"], 16, q["where"]),
                                    q["references"]) for q in items]
            else:
                preds = [generate(model, tok, proc, run_cfg, it["conversations"], it["image"], 48) for it in items]
                metric = letter_match if task == "mcq" else unigram_f1
                got = [metric(p, it["answer"]) for p, it in zip(preds, items)]
            scores[task] = sum(got) / len(got)
    return scores


def letter_match(prediction: str, reference: str) -> float:
    first = lambda s: (s.strip()[:1] or " ").upper()  # noqa: E731
    return float(first(prediction) == first(reference))


def unigram_f1(prediction: str, reference: str) -> float:
    from datamix.train.vqa_eval import normalize_answer

    p, r = normalize_answer(prediction).split(), normalize_answer(reference).split()
    common = sum((Counter(p) & Counter(r)).values())
    if not p or not r or not common:
        return float(p == r)
    precision, recall = common / len(p), common / len(r)
    return 2 * precision * recall / (precision + recall)


def _table(results: list[dict], cfg: StudyConfig) -> dict:
    full = {r["seed"]: r["metrics"] for r in results if r["ratio"] == 1.0}
    rows = []
    for r in results:
        ref = full.get(r["seed"], {})
        rel = {t: (v / ref[t] if ref.get(t) else None) for t, v in r["metrics"].items()}
        known = [v for v in rel.values() if v is not None]
        rows.append({**r, "relative": rel, "relative_mean": sum(known) / len(known) if known else None})
    protocol = ("epoch-matched: every rung trains the same number of passes over its own data (fewer steps for "
                "smaller rungs), as in the LLaVA-1.5 paper" if cfg.match == "epochs" else
                "compute-matched: every rung trains the full mix's steps (smaller rungs are repeated)")
    return {"match": cfg.match, "protocol": protocol, "ratios": sorted({r["ratio"] for r in results}),
            "seeds": cfg.seeds, "epochs": cfg.epochs, "stage1_steps": cfg.stage1_steps, "rows": rows}


def _lines(study: dict) -> list[str]:
    tasks = sorted({t for r in study["rows"] for t in r["metrics"]})
    out = [f"{'ratio':>6} {'seed':>4} {'samples':>8} {'steps':>6} " + " ".join(f"{t:>12}" for t in tasks)
           + f" {'relative':>9}"]
    for r in study["rows"]:
        rel = "" if r["relative_mean"] is None else f"{r['relative_mean']:.1%}"
        out.append(f"{r['ratio']:>6g} {r['seed']:>4} {r['samples']:>8,} {r['steps']:>6} "
                   + " ".join(f"{r['metrics'].get(t, float('nan')):>12.3f}" for t in tasks) + f" {rel:>9}")
    return out


def _write(study: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.json").write_text(json.dumps(study, indent=1) + "\n")
    tasks = sorted({t for r in study["rows"] for t in r["metrics"]})
    with (out / "study.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ratio", "seed", "samples", "steps", "match", *tasks, *(f"{t}_relative" for t in tasks),
                    "relative_mean"])
        for r in study["rows"]:
            w.writerow([r["ratio"], r["seed"], r["samples"], r["steps"], study["match"],
                        *(_fmt(r["metrics"].get(t)) for t in tasks), *(_fmt(r["relative"].get(t)) for t in tasks),
                        _fmt(r["relative_mean"])])
    png = _plot(study, out / "study.png")
    table = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in line.split()) + "</tr>\n"
                    for line in _lines(study))
    img = '<img src="study.png" alt="relative performance against data fraction">' if png else ""
    (out / "index.html").write_text(
        f"<!doctype html><meta charset=utf-8><title>datamix study</title><h1>Data-efficiency study</h1>"
        f"<p>{html.escape(study['protocol'])}.</p>{img}<table border=1>\n{table}</table>\n")


def _fmt(value) -> str:
    return "" if value is None else f"{value:.6g}"


def _plot(study: dict, png: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    by_ratio = defaultdict(list)
    for r in study["rows"]:
        if r["relative_mean"] is not None:
            by_ratio[r["ratio"]].append(r["relative_mean"])
    xs = sorted(by_ratio)
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in study["rows"]:
        if r["relative_mean"] is not None:
            ax.scatter(r["ratio"], r["relative_mean"], color="grey", alpha=0.5, s=12)
    ax.plot(xs, [sum(by_ratio[x]) / len(by_ratio[x]) for x in xs], marker="o", label="mean over seeds")
    ax.axhline(PAPER_LINE, color="red", linestyle="--", label="98% of full (LLaVA-1.5, 50% of the mix)")
    ax.set_xlabel("fraction of the mix")
    ax.set_ylabel("performance relative to the full mix")
    ax.set_title("datamix study, " + ("epoch-matched" if study["match"] == "epochs" else "compute-matched"))
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png
