"""The "supervised, same budget" reference: the study's ViT baseline encoder with a per-token linear classifier,
trained on the synthetic world's ground-truth masks for the main model's budget (`groupvit train-supervised`).

    model       encoder + head, model.pt save / load
    data        the world's train split rendered with its masks, paired crop/flip augmentation
    train       the training loop: checkpoints, resume, metrics.jsonl, summary.json
    evaluate    per-pixel argmax readout scored in the metrics format of `groupvit evaluate`

A reference row (how far zero-shot is from supervision), not a baseline GroupViT has to beat; no training job's
code imports this package.
"""
