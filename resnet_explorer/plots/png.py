"""PNG output with PIL alone (no browser): images as data URIs for figures, and the offline attribution grid.

`render_attribution_png` draws one method's attribution grid for the CLI with the same
normalisation, colours and opacity as the app's plotly grid (`heatmap`).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .heatmap import (
    MASK_RGB,
    ArrayLike,
    display_images,
    display_maps,
    display_masks,
    inferno,
    outline,
    overlay,
    resize_nearest,
)

__all__ = ["PNG_CELL", "PNG_FONT_SIZE", "PNG_LEGEND_W", "PNG_LINE", "PNG_PAD", "png_data_uri", "render_attribution_png"]

# PNG layout (render_attribution_png), all in px: width = 3 * PNG_PAD + 2 * cell + PNG_LEGEND_W;
# height = PNG_PAD + PNG_LINE * (title lines + 1 header line) + per row (PNG_LINE if row titles) + cell + PNG_PAD.
PNG_CELL = 128  # the longer side of each cell; 32x32 inputs are upscaled 4x, nearest neighbour
PNG_PAD = 8
PNG_LINE = 18
PNG_LEGEND_W = 48
PNG_FONT_SIZE = 13


def png_data_uri(pixels: np.ndarray) -> str:
    """(H, W, 3) or (H, W) floats in [0, 1] -> a PNG data URI (far smaller than pixel lists in a figure's JSON)."""
    buffer = io.BytesIO()
    Image.fromarray(np.round(pixels * 255).astype(np.uint8), "RGB" if pixels.ndim == 3 else "L").save(
        buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _font(size: int = PNG_FONT_SIZE) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType: scalable
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


def _text_width(draw: ImageDraw.ImageDraw, text: str, font) -> float:
    return draw.textlength(text, font=font)


def _fit(draw: ImageDraw.ImageDraw, text: str, font, width: float) -> str:
    """The text, cut with '...' to fit `width` px."""
    if _text_width(draw, text, font) <= width:
        return text
    while text and _text_width(draw, text + "...", font) > width:
        text = text[:-1]
    return text + "..."


def _wrap_px(draw: ImageDraw.ImageDraw, text: str, font, width: float) -> list[str]:
    """Greedy word wrap to `width` px (a word longer than a line is cut)."""
    lines: list[str] = []
    for paragraph in str(text).split("\n"):
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}".strip()
            if line and _text_width(draw, candidate, font) > width:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(_fit(draw, line, font, width))
    return lines


def render_attribution_png(images: ArrayLike, heatmap: ArrayLike, *, row_titles: Sequence[str] | None = None,
                           masks: ArrayLike | None = None, title: str = "") -> bytes:
    """One method's attribution grid as PNG bytes, drawn with PIL alone (no browser): for the CLI.

    One row per image: the input | the grayscale input under the heat-map (same normalisation,
    inferno colours and opacity as `plot_attribution_grid`), each cell upscaled by nearest neighbour
    so its longer side is PNG_CELL px; a colour bar on the right; white background; text in PIL's
    default font. Layout in px, with cell = PNG_CELL for square images:
    width = 3 * PNG_PAD + 2 * cell + PNG_LEGEND_W, height = PNG_PAD + PNG_LINE * (title lines + 1)
    + N * (cell + PNG_PAD + (PNG_LINE if row_titles else 0)); the title wraps to the width.

    Args:
        images: (N, 3, H, W) or (N, 1, H, W) floats in [0, 1].
        heatmap: (N, h, w) non-negative map of one method (h, w may be coarser than H, W).
        row_titles: N strings written above each row.
        masks: (N, H, W) bool; outlined in cyan on both cells.
        title: text at the top; empty draws none.

    Returns:
        PNG file bytes.
    """
    rgb = display_images(images)
    if rgb is None:
        raise ValueError("render_attribution_png needs at least one image")
    n, height, width, _ = rgb.shape
    maps = display_maps(heatmap, n, "heatmap")
    mask = display_masks(masks, n, height, width)
    if row_titles is not None and len(row_titles) != n:
        raise ValueError(f"row_titles needs one string per image ({n}), got {len(row_titles)}")
    scale = PNG_CELL / max(height, width)
    cell_h, cell_w = max(1, round(height * scale)), max(1, round(width * scale))
    canvas_w = 3 * PNG_PAD + 2 * cell_w + PNG_LEGEND_W
    font = _font()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    title_lines = _wrap_px(measure, title, font, canvas_w - 2 * PNG_PAD) if title else []
    row_h = cell_h + PNG_PAD + (PNG_LINE if row_titles is not None else 0)
    canvas_h = PNG_PAD + PNG_LINE * (len(title_lines) + 1) + n * row_h
    canvas = Image.new("RGB", (canvas_w, canvas_h), "white")
    draw = ImageDraw.Draw(canvas)
    y = PNG_PAD
    for line in title_lines:
        draw.text((PNG_PAD, y), line, fill="black", font=font)
        y += PNG_LINE
    x_input, x_heat = PNG_PAD, 2 * PNG_PAD + cell_w
    for x, text in ((x_input, "input"), (x_heat, "attribution")):
        draw.text((x + (cell_w - _text_width(draw, text, font)) / 2, y), text, fill="#333333", font=font)
    y += PNG_LINE
    bar_top = y + (PNG_LINE if row_titles is not None else 0)
    for i in range(n):
        if row_titles is not None:
            draw.text((PNG_PAD, y), _fit(draw, str(row_titles[i]), font, canvas_w - 2 * PNG_PAD), fill="black",
                      font=font)
            y += PNG_LINE
        picture = resize_nearest(rgb[i], cell_h, cell_w)
        heat = overlay(picture, resize_nearest(maps[i], cell_h, cell_w))
        if mask is not None:
            edge = outline(resize_nearest(mask[i], cell_h, cell_w))
            picture, heat = picture.copy(), heat.copy()
            picture[edge] = MASK_RGB
            heat[edge] = MASK_RGB
        for x, cell in ((x_input, picture), (x_heat, heat)):
            canvas.paste(Image.fromarray(np.round(np.clip(cell, 0, 1) * 255).astype(np.uint8), "RGB"), (x, y))
        y += cell_h + PNG_PAD
    # Colour bar beside the first row: 1 (the map's 99th percentile) at the top, 0 at the bottom.
    bar_x = x_heat + cell_w + PNG_PAD
    ramp = inferno(np.linspace(1.0, 0.0, cell_h))[:, None, :].repeat(10, axis=1)
    canvas.paste(Image.fromarray(np.round(ramp * 255).astype(np.uint8), "RGB"), (bar_x, bar_top))
    draw.rectangle((bar_x - 1, bar_top - 1, bar_x + 10, bar_top + cell_h), outline="#888888")
    small = _font(PNG_FONT_SIZE - 2)
    draw.text((bar_x + 14, bar_top - 2), "1", fill="#333333", font=small)
    draw.text((bar_x + 14, bar_top + cell_h - PNG_LINE + 4), "0", fill="#333333", font=small)
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()
