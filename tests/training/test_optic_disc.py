"""Finding the optic disc and cutting a close-up around it, on drawn fundus photos."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason='training tests need the [train] extra: pip install -e ".[train]" torch==2.13.0')

from eyescreen.preprocess import to_model_input  # noqa: E402
from eyescreen.training.optic_disc import DiscCrop, OpticDiscLocator  # noqa: E402

SIZE = 128


def drawn_fundus(disc_x: int, disc_y: int, *, glare: bool = False) -> np.ndarray:
    """An orange field of view on black, with a pale disc of radius SIZE / 16 at (disc_x, disc_y)."""
    rows, columns = np.mgrid[0:SIZE, 0:SIZE]
    centre = (SIZE - 1) / 2
    field = np.hypot(rows - centre, columns - centre) <= 0.49 * SIZE
    photo = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
    photo[field] = (170, 80, 30)
    if glare:
        # A bright crescent along the rim, as uneven lighting gives.
        rim = field & (np.hypot(rows - centre, columns - centre) > 0.44 * SIZE) & (columns < centre)
        photo[rim] = (235, 190, 120)
    disc = np.hypot(rows - disc_y, columns - disc_x) <= SIZE / 16
    photo[disc] = (250, 220, 150)
    return photo


@pytest.mark.parametrize(("disc_x", "disc_y"), [(96, 64), (34, 70), (60, 40)])
@pytest.mark.parametrize("glare", [False, True])
def test_locator_finds_the_disc(disc_x: int, disc_y: int, glare: bool) -> None:
    photo = torch.from_numpy(to_model_input(drawn_fundus(disc_x, disc_y, glare=glare)[None]))

    with torch.no_grad():
        x, y = OpticDiscLocator(SIZE)(photo)[0].tolist()

    # [-1, 1] coordinates back to pixels; one search cell is SIZE / 64 = 2 pixels.
    assert (x + 1) / 2 * SIZE == pytest.approx(disc_x + 0.5, abs=3)
    assert (y + 1) / 2 * SIZE == pytest.approx(disc_y + 0.5, abs=3)


def test_locator_rejects_a_size_off_the_search_grid() -> None:
    with pytest.raises(ValueError, match="100"):
        OpticDiscLocator(100)


def test_close_up_is_centred_on_the_disc() -> None:
    photo = torch.from_numpy(to_model_input(drawn_fundus(96, 64)[None]))

    with torch.no_grad():
        close_up = DiscCrop(SIZE, 32, 0.25)(photo)[0]

    assert close_up.shape == (3, 32, 32)
    # The disc (radius 8 px) fills the middle of a 32 px crop of 0.25 * 128 = 32 px.
    middle = close_up[:, 12:20, 12:20]
    corners = close_up[:, [0, 0, -1, -1], [0, -1, 0, -1]]
    assert middle[1].min() > corners[1].max()
