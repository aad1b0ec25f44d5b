"""The exported web page in a real browser: headless Chromium draws the grid for fixed noise
with onnxruntime-web, and its canvas matches fastgan's own samples within 1/255 per pixel."""

from __future__ import annotations

import html
import json
import math
import re

import numpy as np
import pytest
from PIL import Image
from support import browser
from support.small_presets import small_config

import fastgan
from fastgan import GAN, ConfigError

pytestmark = pytest.mark.skipif(browser.CHROMIUM is None,
                                reason="needs headless Chromium (apt-get install chromium)")


def trained(name: str) -> GAN:
    """A small preset making 8 x 8 images, after two training steps."""
    gan = GAN(small_config(name, data_dim=64, ema_decay=0.9), seed=5)
    rng = np.random.default_rng(0)
    for _ in range(2):
        gan.step(rng.uniform(-1, 1, (gan.k * gan.batch_size, 64)).astype(np.float32))
    return gan


def expected_grid(samples: np.ndarray, shape: tuple[int, int, int], scale: int) -> np.ndarray:
    """The page's grid of ``samples`` as RGB bytes: ceil(sqrt(n)) columns, each pixel a
    ``scale`` x ``scale`` block of round((v + 1) 127.5)."""
    height, width, channels = shape
    columns = math.ceil(math.sqrt(len(samples)))
    rows = math.ceil(len(samples) / columns)
    grid = np.zeros((rows * height, columns * width, 3))
    for index, sample in enumerate(samples.reshape(-1, height, width, channels)):
        top, left = index // columns * height, index % columns * width
        grid[top:top + height, left:left + width] = sample   # one channel: grey
    values = np.clip(np.round((grid + 1) * 127.5), 0, 255)
    return values.repeat(scale, axis=0).repeat(scale, axis=1)


@pytest.mark.parametrize("name", ["tiny", "keras-dcgan"])
def test_the_page_draws_fastgans_samples(name, tmp_path):
    gan = trained(name)
    site = fastgan.export(gan, tmp_path / "site", format="web")
    z = gan.draw_sample_noise(6, seed=3).astype(np.float32)
    (site / "z.json").write_text(json.dumps(z.tolist()))
    settings = json.loads((site / "model.json").read_text())
    with browser.served(site) as url:
        dom = browser.dump_dom(f"{url}index.html?z=z.json")
        screenshot = tmp_path / "page.png"
        browser.screenshot(f"{url}index.html?z=z.json", screenshot, (480, 420))
    data_url = re.search(r'<output id="pixels"[^>]*>([^<]+)</output>', dom)
    assert data_url, f"the page drew nothing: {html.unescape(dom)[-600:]}"
    drawn = browser.data_url_pixels(html.unescape(data_url.group(1)))
    expected = expected_grid(gan.sample(len(z), z), tuple(settings["image_shape"]),
                             settings["scale"])
    assert drawn.shape[:2] == expected.shape[:2]
    assert np.abs(drawn[..., :3].astype(int) - expected).max() <= 1   # 1/255
    other = expected_grid(gan.sample(len(z), seed=4), tuple(settings["image_shape"]),
                          settings["scale"])
    assert np.abs(drawn[..., :3].astype(int) - other).max() > 1   # the comparison can fail
    with Image.open(screenshot) as shot:
        assert shot.size == (480, 420)
        pixels = np.asarray(shot.convert("L"))
    assert pixels.std() > 0   # a page, not a blank window


def test_the_page_refuses_what_it_cannot_draw(tmp_path):
    gan = GAN(small_config("tiny", data_dim=12), seed=5)   # 12 features: not a square image
    with pytest.raises(ConfigError, match="draws images"):
        fastgan.export(gan, tmp_path / "site", format="web")
    with pytest.raises(ConfigError, match="draws samples of the generator"):
        fastgan.export(gan, tmp_path / "site", format="web", network="discriminator")
    assert list(tmp_path.iterdir()) == []
