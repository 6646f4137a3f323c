"""Networks by name: MONAI's U-Net, V-Net, DenseNet and ResNet, and our DeepMedic and VGG.

``build_model`` is the one place a network is made from a name, so a checkpoint can record the
name and arguments (``model_spec``) and ``load_checkpoint_model`` can make the same network again.
Segmentation networks return logits with the input's spatial shape, (N, out_channels, *spatial);
classification networks return logits (N, out_channels).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

MODEL_NAMES: tuple[str, ...] = (
    "unet", "vnet", "deepmedic", "densenet121", "resnet18", "resnet34", "resnet50", "vgg",
)
SEGMENTATION_MODELS: tuple[str, ...] = ("unet", "vnet", "deepmedic")
SPEC_ATTRIBUTE = "voxelwise_spec"


def _unet(spatial_dims: int, in_channels: int, out_channels: int, **kwargs: Any) -> nn.Module:
    from monai.networks.nets import UNet

    channels = tuple(kwargs.pop("channels", (16, 32, 64, 128, 256)))
    strides = kwargs.pop("strides", (2,) * (len(channels) - 1))
    strides = tuple(tuple(s) if isinstance(s, list | tuple) else s for s in strides)
    options = {"num_res_units": 2, "norm": "instance"} | kwargs
    return UNet(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels,
                channels=channels, strides=strides, **options)


def _vnet(spatial_dims: int, in_channels: int, out_channels: int, **kwargs: Any) -> nn.Module:
    from monai.networks.nets import VNet

    options = {"dropout_prob_down": 0.0, "dropout_prob_up": (0.0, 0.0),
               "dropout_dim": spatial_dims} | kwargs
    options["dropout_prob_up"] = tuple(options["dropout_prob_up"])
    return VNet(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels,
                **options)


def _deepmedic(spatial_dims: int, in_channels: int, out_channels: int,
               **kwargs: Any) -> nn.Module:
    from voxelwise.models.deepmedic import DeepMedic

    return DeepMedic(spatial_dims, in_channels, out_channels, **kwargs)


POOLINGS = ("avg", "max")


def global_pool(spatial_dims: int, pooling: str) -> nn.Module:
    """The classifier's global pooling: ``"avg"`` (MONAI's) or ``"max"``.

    Max pooling lets a small bright finding in one corner of the image decide the logit, which
    averaging over the whole feature map dilutes (a small haematoma on a head-CT slice).
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
    if pooling == "avg":
        return (nn.AdaptiveAvgPool2d if spatial_dims == 2 else nn.AdaptiveAvgPool3d)(1)
    return (nn.AdaptiveMaxPool2d if spatial_dims == 2 else nn.AdaptiveMaxPool3d)(1)


def _densenet121(spatial_dims: int, in_channels: int, out_channels: int,
                 pooling: str = "avg", **kwargs: Any) -> nn.Module:
    from monai.networks.nets import DenseNet121

    model = DenseNet121(spatial_dims=spatial_dims, in_channels=in_channels,
                        out_channels=out_channels, **({"pretrained": False} | kwargs))
    model.class_layers.pool = global_pool(spatial_dims, pooling)
    return model


def _resnet(depth: int) -> Callable[..., nn.Module]:
    def build(spatial_dims: int, in_channels: int, out_channels: int, pooling: str = "avg",
              **kwargs: Any) -> nn.Module:
        from monai.networks.nets import resnet

        factory = getattr(resnet, f"resnet{depth}")
        model = factory(spatial_dims=spatial_dims, n_input_channels=in_channels,
                        num_classes=out_channels, **({"pretrained": False} | kwargs))
        model.avgpool = global_pool(spatial_dims, pooling)
        return model
    return build


def _vgg(spatial_dims: int, in_channels: int, out_channels: int, **kwargs: Any) -> nn.Module:
    from voxelwise.models.vgg import VGGClassifier

    return VGGClassifier(spatial_dims, in_channels, out_channels, **kwargs)


_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "unet": _unet, "vnet": _vnet, "deepmedic": _deepmedic, "densenet121": _densenet121,
    "resnet18": _resnet(18), "resnet34": _resnet(34), "resnet50": _resnet(50), "vgg": _vgg,
}


def build_model(name: str, *, spatial_dims: int, in_channels: int, out_channels: int,
                **kwargs: Any) -> nn.Module:
    """The network ``name`` (one of `MODEL_NAMES`); ``kwargs`` go to its constructor.

    The returned module carries its recipe in ``model.voxelwise_spec`` (see `model_spec`).
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, not {spatial_dims}")
    model = _BUILDERS[name](spatial_dims, in_channels, out_channels, **dict(kwargs))
    setattr(model, SPEC_ATTRIBUTE, {
        "name": name, "spatial_dims": spatial_dims, "in_channels": in_channels,
        "out_channels": out_channels, "kwargs": dict(kwargs)})
    return model


def model_spec(model: nn.Module) -> dict[str, Any] | None:
    """``{"name", "spatial_dims", "in_channels", "out_channels", "kwargs"}`` of a built model."""
    spec = getattr(model, SPEC_ATTRIBUTE, None)
    return None if spec is None else dict(spec)


def build_from_spec(spec: dict[str, Any]) -> nn.Module:
    """The network a `model_spec` dictionary describes."""
    return build_model(spec["name"], spatial_dims=int(spec["spatial_dims"]),
                       in_channels=int(spec["in_channels"]),
                       out_channels=int(spec["out_channels"]), **dict(spec.get("kwargs") or {}))
