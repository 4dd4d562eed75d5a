"""ONNX sessions and the model registry (no torch here, ever)."""

from duchenne.models.registry import ModelCfg, create_model, get_model_cfg, list_models
from duchenne.models.session import OnnxModel

__all__ = ["ModelCfg", "OnnxModel", "create_model", "get_model_cfg", "list_models"]
