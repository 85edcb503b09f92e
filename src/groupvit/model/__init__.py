"""GroupViT model library (needs torch + timm; transformers/sentence-transformers only for MiniLM and HF weights).

    model = build_model(ModelConfig())                 # paper's 2-stage GroupViT
    out = model(images, model.tokenizer(captions))     # dict: the loss's keyword arguments
    losses = GroupViTLoss(loss_cfg, rank, world_size)(**out)
    save_checkpoint("model.pt", model, step=1000); model = load_model("model.pt")
    model = load_model("group_vit_gcc_yfcc_30e-879422e0.pth")   # official weights (or an HF folder / state dict)
"""
from .checkpoint import (
    ArchitectureMismatch,
    checkpoint_filter_fn,
    infer_model_config,
    load_checkpoint_state,
    load_model,
    save_checkpoint,
)
from .config import ImageEncoderConfig, ModelConfig, TextEncoderConfig, model_config_from_dict
from .convert_hf import convert_hf_state_dict, model_config_from_hf
from .convert_nvlabs import convert_nvlabs_state_dict
from .dual_encoder import GroupViTModel
from .factory import build_model, validate_model_config
from .loss import GroupViTLoss, contrastive_loss, multi_label_loss
from .outputs import GroupingOutput, ImageEncoderOutput
from .tokenizer import ClipBpeTokenizer, WordPieceTokenizer, build_tokenizer

__all__ = [
    "ArchitectureMismatch", "ClipBpeTokenizer", "GroupViTLoss", "GroupViTModel", "GroupingOutput",
    "ImageEncoderConfig", "ImageEncoderOutput", "ModelConfig", "TextEncoderConfig", "WordPieceTokenizer",
    "build_model", "build_tokenizer", "checkpoint_filter_fn", "contrastive_loss", "convert_hf_state_dict",
    "convert_nvlabs_state_dict", "infer_model_config", "load_checkpoint_state", "load_model",
    "model_config_from_dict", "model_config_from_hf", "multi_label_loss", "save_checkpoint", "validate_model_config",
]
