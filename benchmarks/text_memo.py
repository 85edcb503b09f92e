"""What the frozen MiniLM text tower costs a training step, with and without its memo of encoded texts.

    python benchmarks/text_memo.py [--rounds 2] [--batches 8] [--threads 1] [--data data/default/synthetic]

The `groupvit_2stage_minilm` variant of the default study trains with the pretrained all-MiniLM-L6-v2 frozen. Frozen,
a text's features depend on its tokens only, and the default world's 20,000 training captions hold about 6,300
distinct ones (the noun prompts are one template over the world's nouns), so the tower remembers what it has encoded
(each text once, at its own length). Measured side by side, alternating within each round, on consecutive batches of
the world's real train stream (captions + noun prompts), median wall time of forward + loss + backward + clip + fused
AdamW:
  bow:          the main model (bag-of-words text tower), the reference;
  minilm:       frozen MiniLM, every text encoded in each batch (padded to the batch's longest), as without the memo;
  minilm_cold:  frozen MiniLM with an empty memo at the start of each round (the first pass over the data);
  minilm_warm:  frozen MiniLM with every text of these batches memoised (the state after the first epoch);
  minilm_tuned: MiniLM fine-tuned (`model.text.freeze: false`): every text encoded, and the tower trains.
Writes results/benchmarks/text_memo.json.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from groupvit.config import load_config
from groupvit.model import GroupViTLoss, build_model
from groupvit.train.data_source import synthetic_train_data
from groupvit.train.optim import build_optimizer
from groupvit.train.runner import seed_everything

from bench_record import write_record  # beside this script

REPO = Path(__file__).resolve().parents[1]


class Arm:
    """One model + optimiser, stepped on the given batches; `step_s` are its wall times per step."""

    def __init__(self, cfg, memo: bool = True) -> None:
        seed_everything(0)
        self.model = build_model(cfg.model).train()
        if not memo:  # the frozen tower's batch path: the same weights, no memo (nothing in it trains either way)
            self.model.text_encoder.freeze = False
        self.loss_fn = GroupViTLoss(cfg.train.loss)
        self.opt = build_optimizer(self.model, lr=1e-4, weight_decay=0.05,
                                   no_decay_keywords=cfg.train.no_weight_decay_keywords)
        self.clip = cfg.train.clip_grad
        self.step_s: list[float] = []

    def run(self, batches: list[dict]) -> None:
        for batch in batches:
            start = time.perf_counter()
            losses = self.loss_fn(**self.model(image=batch["image"], text=batch["text"], prompts=batch["prompts"]))
            losses["loss"].backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip, foreach=True)
            self.opt.step()
            self.opt.zero_grad(set_to_none=True)
            self.step_s.append(time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batches", type=int, default=8, help="consecutive batches of 64 per arm and round")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data", type=Path, default=REPO / "data" / "default" / "synthetic",
                        help="the default world (snakemake --cores 2 data/default/synthetic/datacard.json makes it)")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "benchmarks" / "text_memo.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()

    config = REPO / "config" / "config.yaml"
    bow_cfg = load_config(config, "default").for_variant("groupvit_2stage", 0)
    minilm_cfg = load_config(config, "default").for_variant("groupvit_2stage_minilm", 0)
    tuned_cfg = load_config(config, "default", ["model.text.freeze=false"]).for_variant("groupvit_2stage_minilm", 0)
    arms = {"bow": Arm(bow_cfg), "minilm": Arm(minilm_cfg, memo=False), "minilm_cold": Arm(minilm_cfg),
            "minilm_warm": Arm(minilm_cfg), "minilm_tuned": Arm(tuned_cfg)}

    def first_batches(tokenize) -> list[dict]:  # the same samples for both tokenizers (CLIP BPE, WordPiece)
        stream = synthetic_train_data(minilm_cfg, args.data).make_batches(
            start_step=0, batch_size=minilm_cfg.train.batch_size, rank=0, world_size=1, seed=0, tokenize=tokenize)
        return [next(stream) for _ in range(args.batches)]

    batches = first_batches(arms["minilm"].model.tokenizer)
    bow_batches = first_batches(arms["bow"].model.tokenizer)
    texts = torch.cat([torch.cat([b["text"].unsqueeze(1), b["prompts"]], dim=1).flatten(0, 1) for b in batches])
    pad = arms["minilm"].model.text_encoder.pad_token_id
    distinct = len({tuple(row[row != pad].tolist()) for row in texts})
    with torch.no_grad():
        arms["minilm_warm"].model.text_encoder(texts)  # memoise every text of these batches

    for _ in range(args.rounds):
        for name, arm in arms.items():
            if name == "minilm_cold":
                arm.model.text_encoder._features.clear()
            arm.run(bow_batches if name == "bow" else batches)

    median = {name: statistics.median(arm.step_s) for name, arm in arms.items()}
    result = {
        "benchmark": "text_memo",
        "command": " ".join(["python benchmarks/text_memo.py", *(argv if argv is not None else sys.argv[1:])]),
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "batch_size": minilm_cfg.train.batch_size,
        "texts_per_batch": texts.shape[0] // args.batches,  # each caption + its noun prompts
        "distinct_texts_in_batches": distinct,
        "batches": args.batches,
        "rounds": args.rounds,
        "median_step_s": {name: round(s, 4) for name, s in median.items()},
        "samples_per_s": {name: round(minilm_cfg.train.batch_size / s, 1) for name, s in median.items()},
        "step_vs_bow": {name: round(s / median["bow"], 2) for name, s in median.items()},
    }
    return write_record(result, args.out, load_before)


if __name__ == "__main__":
    main()
