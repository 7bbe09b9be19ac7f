import pytest
import torch
from torch import Tensor

from src.config import TTA_VIEW_NAMES
from src.config_checks import check_value
from src.evaluation.probabilities import split_tasks, task_softmax
from src.evaluation.tta import TTA_VIEWS, tta_probabilities
from src.utils.errors import UserError
from tests.specs import NUM_CLASSES

# A 2 x 3 image, displayed with row 0 at the top:
#   0 1 2
#   3 4 5
IMAGE = torch.arange(6.0).reshape(1, 1, 2, 3)


def _grid(rows: list[list[float]]) -> Tensor:
    return torch.tensor(rows).reshape(1, 1, len(rows), len(rows[0]))


def test_view_names_match_config():
    assert list(TTA_VIEWS) == list(TTA_VIEW_NAMES)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("identity", [[0, 1, 2], [3, 4, 5]]),
        ("vflip", [[3, 4, 5], [0, 1, 2]]),
        ("hflip", [[2, 1, 0], [5, 4, 3]]),
        ("vhflip", [[5, 4, 3], [2, 1, 0]]),
        ("rot90cw", [[3, 0], [4, 1], [5, 2]]),
        ("rot90ccw", [[2, 5], [1, 4], [0, 3]]),
    ],
)
def test_views_are_the_named_geometric_ops(name, expected):
    assert torch.equal(TTA_VIEWS[name](IMAGE), _grid(expected))


def test_view_identities():
    x = torch.randn(2, 3, 4, 5)
    cw, ccw = TTA_VIEWS["rot90cw"], TTA_VIEWS["rot90ccw"]
    assert torch.equal(ccw(cw(x)), x)
    assert torch.equal(cw(ccw(x)), x)
    assert torch.equal(TTA_VIEWS["vhflip"](x), cw(cw(x)))
    assert torch.equal(TTA_VIEWS["hflip"](TTA_VIEWS["vflip"](x)), TTA_VIEWS["vhflip"](x))
    for name in ("vflip", "hflip", "vhflip"):
        assert torch.equal(TTA_VIEWS[name](TTA_VIEWS[name](x)), x)


class PixelForward:
    """A fixed linear map of the pixels: not view-invariant, so each view's output differs.

    It also checks that both images of the pair received the same view (derm = 2 * clinic).
    """

    def __init__(self, pixels: int) -> None:
        gen = torch.Generator().manual_seed(1)
        self.clin_w = torch.randn(pixels, 24, generator=gen)
        self.derm_w = torch.randn(pixels, 24, generator=gen)
        self.calls = 0

    def __call__(self, clinic: Tensor, derm: Tensor) -> dict[str, Tensor]:
        assert torch.equal(derm, 2 * clinic), "views must be applied identically to both images"
        self.calls += 1
        flat = clinic.flatten(1)
        return {"clin": flat @ self.clin_w, "derm": flat @ self.derm_w}


def test_tta_probabilities_is_mean_of_per_view_softmax():
    torch.manual_seed(0)
    clinic = torch.randn(3, 2, 4, 4)
    forward = PixelForward(2 * 4 * 4)
    views = ["identity", "hflip", "rot90cw"]
    result = tta_probabilities(forward, clinic, 2 * clinic, views, NUM_CLASSES)

    explicit = [clinic, clinic.flip(-1), torch.rot90(clinic, k=-1, dims=(-2, -1))]
    for branch, weight in (("clin", forward.clin_w), ("derm", forward.derm_w)):
        expected = torch.stack(
            [task_softmax(v.flatten(1) @ weight, NUM_CLASSES) for v in explicit]
        ).mean(0)
        torch.testing.assert_close(result[branch], expected)
        for segment in split_tasks(result[branch], NUM_CLASSES):
            torch.testing.assert_close(segment.sum(-1), torch.ones(3))
    assert forward.calls == 3
    assert set(result) == {"clin", "derm"}


def test_single_identity_view_is_plain_softmax():
    clinic = torch.randn(2, 1, 3, 3)
    forward = PixelForward(9)
    result = tta_probabilities(forward, clinic, 2 * clinic, ["identity"], NUM_CLASSES)
    torch.testing.assert_close(
        result["clin"], task_softmax(clinic.flatten(1) @ forward.clin_w, NUM_CLASSES)
    )


@pytest.mark.parametrize("views", [["identity", "rot180"], [], ["hflip", "hflip"]])
def test_bad_views_are_user_errors(views):
    """model.tta_views is checked with the config, in one line listing the valid names."""
    with pytest.raises(UserError, match=r"^model\.tta_views=\[.*\] must be") as err:
        check_value("model.tta_views", views)
    assert "rot90ccw" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("views", [["identity", "rot180"], []])
def test_views_without_a_transform_are_refused(views):
    clinic = torch.zeros(1, 1, 2, 2)
    with pytest.raises(ValueError, match="views must be"):
        tta_probabilities(PixelForward(4), clinic, clinic, views, NUM_CLASSES)


def test_inconsistent_branches_across_views_are_rejected():
    outputs = iter([{"clin": torch.zeros(1, 24)}, {"derm": torch.zeros(1, 24)}])
    clinic = torch.zeros(1, 1, 2, 2)
    with pytest.raises(ValueError, match="branches"):
        tta_probabilities(
            lambda c, d: next(outputs), clinic, clinic, ["identity", "vflip"], NUM_CLASSES
        )
