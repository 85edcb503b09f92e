"""GroupViT reproduction: model library (groupvit.model), data, training, evaluation and the `groupvit` CLI."""

__version__ = "0.1.0"
