//! An RGB raster to draw the report's pictures on: rectangles, lines, markers and text (the
//! public-domain 8 × 8 bitmap font of `font8x8`, scaled by whole pixels), written as PNG.

/// A colour.
pub type Rgb = [u8; 3];

pub const WHITE: Rgb = [255, 255, 255];
pub const BLACK: Rgb = [0, 0, 0];
pub const GREY: Rgb = [150, 150, 150];
pub const LIGHT: Rgb = [225, 225, 225];

/// Paul Tol's "muted" colour-blind-safe palette (its sand aside, which marks the ground
/// truth), in the order methods get them: eight distinct colours.
pub const PALETTE: [Rgb; 8] = [
    [204, 102, 119], // rose
    [51, 34, 136],   // indigo
    [17, 119, 51],   // green
    [136, 204, 238], // cyan
    [136, 34, 85],   // wine
    [68, 170, 153],  // teal
    [153, 153, 51],  // olive
    [170, 68, 153],  // purple
];

/// The ground truth's colour in overlays (Tol's sand, not in [`PALETTE`]).
pub const TRUTH: Rgb = [221, 204, 119];

/// The `n`-th method's colour (distinct for eight methods, then repeating).
pub fn colour(n: usize) -> Rgb {
    PALETTE[n % PALETTE.len()]
}

/// Pixels, row by row, `x` fastest.
#[derive(Debug, Clone)]
pub struct Canvas {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<Rgb>,
}

impl Canvas {
    /// A white canvas.
    pub fn new(width: usize, height: usize) -> Canvas {
        Canvas {
            width,
            height,
            pixels: vec![WHITE; width * height],
        }
    }

    /// The colour at `(x, y)`.
    pub fn get(&self, x: usize, y: usize) -> Rgb {
        self.pixels[y * self.width + x]
    }

    /// Sets `(x, y)`, ignoring points off the canvas.
    pub fn set(&mut self, x: i64, y: i64, c: Rgb) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            self.pixels[y as usize * self.width + x as usize] = c;
        }
    }

    /// Fills the rectangle from `(x, y)`, `w` × `h` pixels.
    pub fn rect(&mut self, x: i64, y: i64, w: i64, h: i64, c: Rgb) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.set(xx, yy, c);
            }
        }
    }

    /// The outline of a rectangle, `t` pixels thick.
    pub fn frame(&mut self, x: i64, y: i64, w: i64, h: i64, t: i64, c: Rgb) {
        self.rect(x, y, w, t, c);
        self.rect(x, y + h - t, w, t, c);
        self.rect(x, y, t, h, c);
        self.rect(x + w - t, y, t, h, c);
    }

    /// A line `t` pixels thick (square brush).
    pub fn line(&mut self, (x0, y0): (f64, f64), (x1, y1): (f64, f64), t: i64, c: Rgb) {
        let steps = (x1 - x0).abs().max((y1 - y0).abs()).ceil().max(1.0) as i64;
        for s in 0..=steps {
            let f = s as f64 / steps as f64;
            let (x, y) = (x0 + f * (x1 - x0), y0 + f * (y1 - y0));
            self.rect(x.round() as i64 - t / 2, y.round() as i64 - t / 2, t, t, c);
        }
    }

    /// A filled disc of radius `r` at `(x, y)`.
    pub fn disc(&mut self, x: f64, y: f64, r: f64, c: Rgb) {
        let (cx, cy, ri) = (x.round() as i64, y.round() as i64, r.ceil() as i64);
        for dy in -ri..=ri {
            for dx in -ri..=ri {
                if ((dx * dx + dy * dy) as f64) <= r * r {
                    self.set(cx + dx, cy + dy, c);
                }
            }
        }
    }

    /// A cross (×) of half-size `r` at `(x, y)`: how an infinite value is drawn.
    pub fn cross(&mut self, x: f64, y: f64, r: f64, t: i64, c: Rgb) {
        self.line((x - r, y - r), (x + r, y + r), t, c);
        self.line((x - r, y + r), (x + r, y - r), t, c);
    }

    /// `text` (ASCII; others as `?`) with its top-left corner at `(x, y)`, each font pixel
    /// `scale` × `scale`.
    pub fn text(&mut self, x: i64, y: i64, text: &str, scale: i64, c: Rgb) {
        for (n, ch) in text.chars().enumerate() {
            let code = if ch.is_ascii() { ch as usize } else { '?' as usize };
            let glyph = font8x8::legacy::BASIC_LEGACY[code];
            let left = x + n as i64 * 8 * scale;
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits >> col & 1 == 1 {
                        self.rect(left + col * scale, y + row as i64 * scale, scale, scale, c);
                    }
                }
            }
        }
    }

    /// `text` centred on `x`.
    pub fn text_centred(&mut self, x: i64, y: i64, text: &str, scale: i64, c: Rgb) {
        self.text(x - text_width(text, scale) / 2, y, text, scale, c);
    }

    /// `text` set vertically (bottom to top), its centre at `(x, y)`.
    pub fn text_vertical(&mut self, x: i64, y: i64, text: &str, scale: i64, c: Rgb) {
        let mut strip = Canvas::new(text_width(text, scale) as usize, 8 * scale as usize);
        strip.pixels.fill([1, 2, 3]); // a key colour: what is not text
        strip.text(0, 0, text, scale, c);
        let (w, h) = (strip.width as i64, strip.height as i64);
        for sy in 0..h {
            for sx in 0..w {
                let p = strip.get(sx as usize, sy as usize);
                if p != [1, 2, 3] {
                    self.set(x - h / 2 + sy, y + w / 2 - sx, p);
                }
            }
        }
    }

    /// The picture as a PNG file's bytes.
    pub fn png(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, self.width as u32, self.height as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().expect("a PNG header into memory");
        let bytes: Vec<u8> = self.pixels.iter().flatten().copied().collect();
        writer.write_image_data(&bytes).expect("PNG data into memory");
        writer.finish().expect("a PNG into memory");
        out
    }
}

/// The width of `text` in pixels.
pub fn text_width(text: &str, scale: i64) -> i64 {
    text.chars().count() as i64 * 8 * scale
}

/// Decodes a PNG (the report's checks and tests): width, height and RGB pixels.
pub fn decode_png(bytes: &[u8]) -> Result<Canvas, String> {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().map_err(|e| e.to_string())?;
    let mut buf = vec![0; reader.output_buffer_size().ok_or("PNG too large")?];
    let info = reader.next_frame(&mut buf).map_err(|e| e.to_string())?;
    if info.color_type != png::ColorType::Rgb || info.bit_depth != png::BitDepth::Eight {
        return Err(format!(
            "{:?} {:?}, expected 8-bit RGB",
            info.color_type, info.bit_depth
        ));
    }
    let pixels = buf[..info.buffer_size()]
        .chunks(3)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    Ok(Canvas {
        width: info.width as usize,
        height: info.height as usize,
        pixels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_picture_round_trips_through_png_and_text_draws_pixels() {
        let mut c = Canvas::new(40, 20);
        c.rect(1, 1, 3, 2, PALETTE[0]);
        c.text(10, 2, "A", 1, BLACK);
        let back = decode_png(&c.png()).unwrap();
        assert_eq!((back.width, back.height), (40, 20));
        assert_eq!(back.pixels, c.pixels);
        assert_eq!(back.get(2, 2), PALETTE[0]);
        let ink = (10..18)
            .flat_map(|x| (2..10).map(move |y| (x, y)))
            .filter(|&(x, y)| back.get(x, y) == BLACK);
        assert!(ink.count() > 10, "the letter A is drawn");
    }
}
