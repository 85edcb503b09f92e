"""GroupViT model library (needs torch + timm; transformers/sentence-transformers only for MiniLM and HF weights).

    model = build_model(ModelConfig())                 # paper's 2-stage GroupViT
    out = model(images, model.tokenizer(captions))     # dict: the loss's keyword arguments
    losses = GroupViTLoss(loss_cfg, rank, world_size)(**out)
    save_checkpoint("model.pt", model, step=1000); model = load_model("model.pt")
    model = load_model("group_vit_gcc_yfcc_30e-879422e0.pth")   # official weights (or an HF folder / state dict)
"""

from groupvit.lazy import lazy_getattr

# Attributes load lazily (groupvit.lazy): reading a config must not import torch and timm.

_LAZY = {
    "ArchitectureMismatch": "checkpoint",
    "ClipBpeTokenizer": "tokenizer",
    "GroupViTLoss": "loss",
    "GroupViTModel": "dual_encoder",
    "GroupingOutput": "outputs",
    "ImageEncoderConfig": "config",
    "ImageEncoderOutput": "outputs",
    "LossConfig": "config",
    "ModelConfig": "config",
    "TextEncoderConfig": "config",
    "WordPieceTokenizer": "tokenizer",
    "build_model": "factory",
    "build_tokenizer": "tokenizer",
    "checkpoint_filter_fn": "checkpoint",
    "contrastive_loss": "loss",
    "convert_hf_state_dict": "convert_hf",
    "convert_nvlabs_state_dict": "convert_nvlabs",
    "infer_model_config": "checkpoint",
    "load_checkpoint_state": "checkpoint",
    "load_model": "checkpoint",
    "model_config_from_dict": "config",
    "model_config_from_hf": "convert_hf",
    "multi_label_loss": "loss",
    "save_checkpoint": "checkpoint",
    "validate_model_config": "factory",
}

__getattr__ = lazy_getattr(__name__, _LAZY)

__all__ = [
    "ArchitectureMismatch", "ClipBpeTokenizer", "GroupViTLoss", "GroupViTModel", "GroupingOutput",
    "ImageEncoderConfig", "ImageEncoderOutput", "LossConfig", "ModelConfig", "TextEncoderConfig", "WordPieceTokenizer",
    "build_model", "build_tokenizer", "checkpoint_filter_fn", "contrastive_loss", "convert_hf_state_dict",
    "convert_nvlabs_state_dict", "infer_model_config", "load_checkpoint_state", "load_model",
    "model_config_from_dict", "model_config_from_hf", "multi_label_loss", "save_checkpoint", "validate_model_config",
]
