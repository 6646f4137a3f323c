"""Models registry and checkpoints: every name builds, checkpoints rebuild the same network."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from voxelwise.errors import InputError
from voxelwise.models import MODEL_NAMES, build_model, load_checkpoint_model, model_spec
from voxelwise.models.checkpoint import save_checkpoint

torch.set_num_threads(1)


@pytest.mark.parametrize("name", ["unet", "vnet", "deepmedic"])
@pytest.mark.parametrize("dims", [2, 3])
def test_segmentation_models_keep_the_spatial_shape(name: str, dims: int) -> None:
    kwargs = {"channels": (4, 8, 16), "strides": (2, 2)} if name == "unet" else {}
    if name == "deepmedic":
        kwargs = {"widths": (4, 4, 6, 6), "head_widths": (8,)}
    model = build_model(name, spatial_dims=dims, in_channels=1, out_channels=3, **kwargs).eval()
    shape = (16,) * dims
    with torch.no_grad():
        assert model(torch.zeros(1, 1, *shape)).shape == (1, 3, *shape)


@pytest.mark.parametrize("name", ["densenet121", "resnet18", "vgg"])
@pytest.mark.parametrize("dims", [2, 3])
def test_classification_models_return_logits(name: str, dims: int) -> None:
    model = build_model(name, spatial_dims=dims, in_channels=2, out_channels=6)
    with torch.no_grad():
        assert model(torch.zeros(2, 2, *(32,) * dims)).shape == (2, 6)


@pytest.mark.parametrize("name", ["densenet121", "resnet18"])
@pytest.mark.parametrize("dims", [2, 3])
def test_global_max_pooling_replaces_the_average(name: str, dims: int) -> None:
    """``pooling="max"``: the logits are the linear layer applied to the maximum of the last
    feature map (so a small finding is not averaged away); recorded in the spec, rebuilt."""
    kwargs = {"widen_factor": 0.25} if name == "resnet18" else {"init_features": 8,
                                                                "growth_rate": 4}
    model = build_model(name, spatial_dims=dims, in_channels=1, out_channels=3,
                        pooling="max", **kwargs).eval()
    pool, linear = (model.avgpool, model.fc) if name == "resnet18" else \
        (model.class_layers.pool, model.class_layers.out)
    seen = {}
    pool.register_forward_hook(lambda module, args, output: seen.update(features=args[0]))
    image = torch.randn(1, 1, *(32,) * dims)
    with torch.no_grad():
        logits = model(image)
        peak = seen["features"].flatten(2).amax(-1)
        assert torch.allclose(logits, linear(peak), atol=1e-5)
    assert model_spec(model)["kwargs"]["pooling"] == "max"
    with pytest.raises(ValueError, match="pooling must be one of avg, max"):
        build_model(name, spatial_dims=dims, in_channels=1, out_channels=1, pooling="sum")


@pytest.mark.parametrize("dims", [2, 3])
def test_vgg_keeps_full_resolution_in_its_first_stage_and_pools_the_maximum(dims: int) -> None:
    """The first stage sees every input pixel at full resolution (no strided stem); the logits
    are the linear layer on the last stage's maximum (``pooling="max"``, the default)."""
    model = build_model("vgg", spatial_dims=dims, in_channels=1, out_channels=2,
                        widths=(4, 8, 8)).eval()
    seen: dict[str, torch.Tensor] = {}
    model.stages[0].register_forward_hook(lambda m, a, out: seen.update(first=out))
    model.stages[-1].register_forward_hook(lambda m, a, out: seen.update(last=out))
    with torch.no_grad():
        logits = model(torch.randn(1, 1, *(16,) * dims))
    assert seen["first"].shape[2:] == (16,) * dims
    assert seen["last"].shape[2:] == (4,) * dims
    assert torch.allclose(logits, model.fc(seen["last"].flatten(2).amax(-1)), atol=1e-5)
    assert model.last_stage == "stages.2"
    with pytest.raises(ValueError, match="pooling must be one of"):
        build_model("vgg", spatial_dims=dims, in_channels=1, out_channels=1, pooling="sum")
    with pytest.raises(ValueError, match="at least one stage"):
        build_model("vgg", spatial_dims=dims, in_channels=1, out_channels=1, widths=())


def test_anisotropic_unet_and_deepmedic() -> None:
    unet = build_model("unet", spatial_dims=3, in_channels=1, out_channels=2,
                       channels=(4, 8, 16), strides=[[1, 2, 2], [2, 2, 2]])
    medic = build_model("deepmedic", spatial_dims=3, in_channels=1, out_channels=2,
                        widths=(4, 4), head_widths=(8,), factor=[1, 3, 3])
    x = torch.zeros(1, 1, 8, 30, 30)
    with torch.no_grad():
        assert unet(torch.zeros(1, 1, 8, 32, 32)).shape == (1, 2, 8, 32, 32)
        assert medic(x).shape == (1, 2, 8, 30, 30)


def test_deepmedic_context_pathway_sees_further_than_the_normal_one() -> None:
    torch.manual_seed(0)
    model = build_model("deepmedic", spatial_dims=2, in_channels=1, out_channels=1,
                        widths=(2, 2), head_widths=(2,), factor=3).eval()
    x = torch.zeros(1, 1, 45, 45, requires_grad=True)
    model(x)[0, 0, 22, 22].backward()
    reach = torch.nonzero(x.grad[0, 0].abs() > 0)
    # two 3x3 layers alone reach 2 voxels; the context pathway, pooled by 3, reaches further
    assert (reach - 22).abs().max() > 4


def test_unknown_model_names_the_choices() -> None:
    with pytest.raises(ValueError, match="unet"):
        build_model("transformer", spatial_dims=3, in_channels=1, out_channels=2)
    assert set(MODEL_NAMES) >= {"unet", "vnet", "deepmedic", "densenet121", "resnet50"}


def test_checkpoint_rebuilds_the_same_network(tmp_path: Path) -> None:
    model = build_model("unet", spatial_dims=2, in_channels=1, out_channels=2,
                        channels=(4, 8), strides=(2,))
    identity = {"task": "segmentation", "model": model_spec(model)}
    path = save_checkpoint(tmp_path / "c.pt", {"identity": identity,
                                               "model_state": model.state_dict()})
    loaded, stored = load_checkpoint_model(path)
    assert stored["model"]["name"] == "unet" and not loaded.training
    x = torch.randn(1, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), loaded(x))


def test_bad_checkpoints_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_checkpoint_model(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="junk.pt: not a readable checkpoint"):
        load_checkpoint_model(junk)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(InputError, match="not a voxelwise checkpoint"):
        load_checkpoint_model(foreign)
    small = build_model("unet", spatial_dims=2, in_channels=1, out_channels=2,
                        channels=(4, 8), strides=(2,))
    spec = model_spec(small) | {"out_channels": 5}
    wrong = save_checkpoint(tmp_path / "wrong.pt", {"identity": {"model": spec},
                                                   "model_state": small.state_dict()})
    with pytest.raises(InputError, match="wrong.pt: weights do not fit"):
        load_checkpoint_model(wrong)
