"""Pretrained encoder weights load correctly (a wrong load would still run, just see nothing)."""
import pytest
import torch
import torch.nn.functional as F

from policies.vla.efficientnet_lite import EfficientNetLite0, SameConv2d, load_pretrained, pretrained_weights_path
from policies.vla.model import VisionEncoder

CAT_CLASSES = {281, 282, 283, 284, 285}  # ImageNet: tabby, tiger cat, Persian, Siamese, Egyptian cat


def chelsea_batch() -> torch.Tensor:
    from skimage import data

    x = torch.from_numpy(data.chelsea()).permute(2, 0, 1)[None].float() / 255.0
    return F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True)


@torch.inference_mode()
def test_efficientnet_lite0_classifies_chelsea_as_a_cat():
    probs = load_pretrained()(chelsea_batch()).softmax(-1)[0]
    assert int(probs.argmax()) in CAT_CLASSES
    assert float(probs[list(CAT_CLASSES)].sum()) > 0.8


@torch.inference_mode()
def test_untrained_network_does_not_see_a_cat():
    torch.manual_seed(0)
    probs = EfficientNetLite0().eval()(chelsea_batch()).softmax(-1)[0]
    assert float(probs[list(CAT_CLASSES)].sum()) < 0.1


@pytest.mark.parametrize(
    "kernel,stride,pads", [(3, 1, (1, 1, 1, 1)), (5, 1, (2, 2, 2, 2)), (3, 2, (0, 1, 0, 1)), (5, 2, (1, 2, 1, 2))]
)
@torch.inference_mode()
def test_same_padding_is_tensorflows(kernel, stride, pads):
    """TF SAME on a 32x32 input: symmetric at stride 1 (done by the conv), right/bottom-heavy at stride 2."""
    torch.manual_seed(0)
    conv = SameConv2d(4, 4, kernel, stride=stride, groups=4, bias=False)
    x = torch.randn(2, 4, 32, 32)
    out = conv(x)
    assert out.shape[-1] == 32 // stride
    assert torch.equal(out, F.conv2d(F.pad(x, pads), conv.weight, stride=stride, groups=4))


def test_traced_vision_encoder_is_bit_identical_to_eager():
    """Inference runs a per-shape TorchScript trace; it must give exactly the eager features (the committed
    evaluation episodes were recorded with eager features)."""
    encoder = VisionEncoder(load_pretrained().requires_grad_(False), grid=4)
    torch.manual_seed(0)
    for batch in (1, 1, 3):
        images = torch.randint(0, 256, (batch, 2, 128, 128, 3), dtype=torch.uint8)
        with torch.inference_mode():
            traced = encoder(images)
        with torch.enable_grad():
            eager = encoder(images)
        assert traced.shape == (batch, 2, 1280, 4, 4)
        assert torch.equal(traced, eager)
    assert len(encoder._traced) == 2  # one trace per input shape, reused


def test_incomplete_weights_are_refused():
    state = torch.load(pretrained_weights_path(), map_location="cpu", weights_only=True)
    state.pop("_conv_head.weight")
    with pytest.raises(RuntimeError, match="_conv_head.weight"):
        EfficientNetLite0().load_state_dict(state, strict=True)


def test_minilm_reproduces_published_similarity():
    from policies.vla.language import shared_minilm

    _, mask, emb = shared_minilm().encode(["A man is eating food.", "A man is eating a piece of bread.", "turn on the stove"])
    sims = emb @ emb.T
    # all-MiniLM-L6-v2's model card example gives 0.7553 for this pair; a wrong load gives something else.
    assert abs(float(sims[0, 1]) - 0.7553) < 0.005
    assert float(sims[0, 2]) < 0.3
    assert mask.dtype == torch.bool and int(mask[0].sum()) == 8
