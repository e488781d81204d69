"""Pretrained encoder weights load correctly (a wrong load would still run, just see nothing)."""
import pytest
import torch
import torch.nn.functional as F

from policies.vla.efficientnet_lite import EfficientNetLite0, load_pretrained, pretrained_weights_path

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
