"""Group concepts (what each group token learned) on the fake GroupViT of test_eval_segmenter, whose groups are
known by construction: red patches belong to group 0, blue to group 1, grey to group 2."""
from __future__ import annotations

import numpy as np
import pytest

from groupvit.evaluation.concepts import concepts_figure, group_concepts, patch_window, write_concepts
from test_eval_segmenter import BLUE, GREY, NO_NORM, PATCH, RED, FakeGroupViT

NAMES = ["background", "cat", "dog", "bird"]


def _scene() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Image 0: red left column (its lower patch a darker red), blue right column; image 1: all grey."""
    a = np.zeros((2 * PATCH, 2 * PATCH, 3), np.uint8)
    a[:, :PATCH] = RED
    a[PATCH:, :PATCH] = (200, 50, 50)  # still nearest red, but less surely so
    a[:, PATCH:] = BLUE
    b = np.full_like(a, GREY)
    mask_a = np.zeros(a.shape[:2], np.uint8)
    mask_a[:, :PATCH], mask_a[:, PATCH:] = 1, 2
    mask_a[0, 0] = 255  # ignored pixels do not vote
    return [a, b], [mask_a, np.zeros_like(mask_a)]


def test_each_token_owns_its_colour_ranked_by_certainty_and_named_by_the_masks():
    images, masks = _scene()
    concepts = group_concepts(FakeGroupViT(), images, masks=masks, class_names=NAMES, top_k=8, **NO_NORM)
    assert concepts.grid == (2, 2) and len(concepts.stages) == 1
    red, blue, grey = concepts.stages[0]
    assert (red.patches, blue.patches, grey.patches) == (2, 2, 4)
    assert (red.share, blue.share, grey.share) == (0.25, 0.25, 0.5)
    assert [t[:3] for t in red.top] == [(0, 0, 0), (0, 1, 0)]  # the pure red patch first
    assert red.top[0][3] > red.top[1][3]
    assert {(i, r, c) for i, r, c, _ in blue.top} == {(0, 0, 1), (0, 1, 1)}
    assert {i for i, _, _, _ in grey.top} == {1}
    assert (red.classes, blue.classes, grey.classes) == ({"cat": 1.0}, {"dog": 1.0}, {"background": 1.0})
    assert red.label == "25.0% of patches, cat 100%"


def test_top_k_limits_the_patches_and_without_masks_no_classes():
    images, _ = _scene()
    concepts = group_concepts(FakeGroupViT(), images, top_k=1, **NO_NORM)
    assert [len(c.top) for c in concepts.stages[0]] == [1, 1, 1]
    assert all(c.classes == {} for c in concepts.stages[0]) and concepts.stages[0][0].label == "25.0% of patches"


def test_a_patch_window_centres_the_patch_in_its_edge_padded_neighbourhood():
    images, _ = _scene()
    window = patch_window(images[0], 0, 1, (2, 2), context=1)
    assert window.shape == (3 * PATCH, 3 * PATCH, 3)
    assert (window[PATCH:2 * PATCH, PATCH:2 * PATCH] == BLUE).all()  # the patch itself
    assert (window[:PATCH, 2 * PATCH:] == BLUE).all()  # padding repeats the edge


def test_figure_and_files_list_only_tokens_that_own_patches(tmp_path):
    images, masks = _scene()
    concepts = group_concepts(FakeGroupViT(), images[1:], masks=masks[1:], class_names=NAMES, **NO_NORM)
    fig = concepts_figure(concepts, images[1:])
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel()]
    assert labels == ["stage 1, group 2\n100.0% of patches, background 100%"]
    assert "2 group tokens own no patch" in fig._suptitle.get_text()
    json_path, png = write_concepts(concepts, ["grey.png"], images[1:], tmp_path / "out")
    assert png.stat().st_size > 1000 and '"image": "grey.png"' in json_path.read_text()


def test_wrong_inputs_are_refused():
    with pytest.raises(ValueError, match="no images"):
        group_concepts(FakeGroupViT(), [])
    with pytest.raises(TypeError, match="no grouping stages"):
        group_concepts(object(), _scene()[0])
    with pytest.raises(ValueError, match="class_names"):
        group_concepts(FakeGroupViT(), _scene()[0], masks=_scene()[1])
