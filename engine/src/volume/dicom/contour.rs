//! Closed planar contours of a binary slice by marching squares, for RTSTRUCT.
//!
//! The contour is the 0.5 iso-line of the mask sampled at pixel centres: every point lies on a
//! pixel edge's midpoint between an inside and an outside centre, so it is within half a pixel
//! of the boundary, and the even-odd rule applied to pixel centres gives the mask back exactly
//! (tested). Outer boundaries and holes are separate contours (holes are nested inside their
//! island; what RT planning systems read with the even-odd rule). Diagonal touching pixels
//! are separate islands (the saddle is resolved like scikit-image's `fully_connected="low"`).
//! Points where the contour goes straight on are dropped.

use std::collections::HashMap;

/// A point in doubled pixel coordinates: `(2i, 2j)` is pixel `(i, j)`'s centre, so edge
/// midpoints are integers.
pub(super) type Point = (i64, i64);

/// One closed contour: points in pixel coordinates `(i, j)` (column, row), not repeating the
/// first at the end.
pub type Contour = Vec<[f64; 2]>;

/// The closed contours of `inside` (a `width × height` slice, `i` fastest): each island's
/// outer boundary and each hole its own ring, read with the even-odd rule.
pub fn contours(inside: &[bool], width: usize, height: usize) -> Vec<Contour> {
    rings(inside, width, height).iter().map(|r| to_pixels(r)).collect()
}

/// How far (pixels) an RTSTRUCT point is moved from the edge midpoint towards the inside pixel
/// centre(s) next to it: tools that round points to pixel centres and fill edges included
/// (rt-utils, OpenCV's `fillPoly`) then land on inside pixels, while tools that test pixel
/// centres (plastimatch, the even-odd rule) still see every centre 0.45 pixel or more away.
pub const INSET: f64 = 0.05;

/// The contours of `inside` as an RTSTRUCT writes them: holes as separate rings or joined to
/// their island by keyholes ([`super::keyhole`]), every point moved [`INSET`] pixel inwards.
pub fn polygons(inside: &[bool], width: usize, height: usize, holes: super::keyhole::Holes) -> Vec<Contour> {
    let rings = rings(inside, width, height);
    let polygons = match holes {
        super::keyhole::Holes::Rings => rings,
        super::keyhole::Holes::Keyhole => super::keyhole::join(rings),
    };
    let at = |x: i64, y: i64| {
        x >= 0 && y >= 0 && (x as usize) < width && (y as usize) < height && inside[y as usize * width + x as usize]
    };
    let inset = |&(x, y): &Point| {
        // The pixel centres nearest the point (2 at an edge midpoint, 4 at a cell corner).
        let near = [
            (x.div_euclid(2), y.div_euclid(2)),
            ((x + 1).div_euclid(2), y.div_euclid(2)),
            (x.div_euclid(2), (y + 1).div_euclid(2)),
            ((x + 1).div_euclid(2), (y + 1).div_euclid(2)),
        ];
        let ins: Vec<(i64, i64)> = near.iter().copied().filter(|&(i, j)| at(i, j)).collect();
        let (px, py) = (x as f64 / 2.0, y as f64 / 2.0);
        let n = ins.len().max(1) as f64;
        let (cx, cy) = ins
            .iter()
            .fold((0.0, 0.0), |(a, b), &(i, j)| (a + i as f64 / n, b + j as f64 / n));
        let (dx, dy) = (cx - px, cy - py);
        let len = (dx * dx + dy * dy).sqrt();
        match len > 1e-9 {
            true => [px + INSET * dx / len, py + INSET * dy / len],
            false => [px, py],
        }
    };
    polygons.iter().map(|r| r.iter().map(inset).collect()).collect()
}

/// A ring in doubled coordinates as pixel coordinates.
fn to_pixels(ring: &[Point]) -> Contour {
    ring.iter().map(|&(x, y)| [x as f64 / 2.0, y as f64 / 2.0]).collect()
}

/// The rings of `inside` in doubled coordinates, the inside always on the same side.
pub(super) fn rings(inside: &[bool], width: usize, height: usize) -> Vec<Vec<Point>> {
    assert_eq!(inside.len(), width * height, "slice of {width} × {height}");
    let at = |x: i64, y: i64| {
        x >= 0 && y >= 0 && (x as usize) < width && (y as usize) < height && inside[y as usize * width + x as usize]
    };
    // Each cell (x, y) has corners a = (x, y), b = (x+1, y), c = (x+1, y+1), d = (x, y+1),
    // walked a → b → c → d; its edge crossings in that order, each with whether it goes from
    // inside to outside.
    let mut next: HashMap<Point, Point> = HashMap::new();
    for y in -1..height as i64 {
        for x in -1..width as i64 {
            let corners = [(x, y), (x + 1, y), (x + 1, y + 1), (x, y + 1)];
            let mut crossings: Vec<(Point, bool)> = Vec::with_capacity(4);
            for e in 0..4 {
                let (p, q) = (corners[e], corners[(e + 1) % 4]);
                let (pi, qi) = (at(p.0, p.1), at(q.0, q.1));
                if pi != qi {
                    crossings.push(((p.0 + q.0, p.1 + q.1), pi));
                }
            }
            // Each inside → outside crossing joins the crossing just before it (outside →
            // inside): the segment cuts off the inside corner(s) between them, so the inside
            // lies to the same side of every segment and a saddle keeps its two inside corners
            // apart.
            let n = crossings.len();
            for (c, &(from, leaves)) in crossings.iter().enumerate() {
                if leaves {
                    let (to, _) = crossings[(c + n - 1) % n];
                    next.insert(from, to);
                }
            }
        }
    }
    let mut starts: Vec<Point> = next.keys().copied().collect();
    starts.sort_unstable_by_key(|p| (p.1, p.0));
    let mut out = Vec::new();
    for start in starts {
        if !next.contains_key(&start) {
            continue; // already part of a traced contour
        }
        let mut ring = vec![start];
        let mut p = next.remove(&start).expect("checked above");
        while p != start {
            ring.push(p);
            p = next
                .remove(&p)
                .expect("every crossing has a successor: the contour closes");
        }
        out.push(simplify(&ring));
    }
    out
}

/// `ring` without the points where it goes straight on.
fn simplify(ring: &[Point]) -> Vec<Point> {
    let n = ring.len();
    (0..n)
        .filter(|&k| {
            let (a, b, c) = (ring[(k + n - 1) % n], ring[k], ring[(k + 1) % n]);
            (b.0 - a.0) * (c.1 - b.1) - (b.1 - a.1) * (c.0 - b.0) != 0
        })
        .map(|k| ring[k])
        .collect()
}

/// The pixels of a `width × height` slice whose centres are inside `contours` by the even-odd
/// rule (as [`even_odd`] at every centre, a row at a time).
pub fn fill_even_odd(contours: &[Contour], width: usize, height: usize) -> Vec<bool> {
    let mut out = vec![false; width * height];
    let mut xs: Vec<f64> = Vec::new();
    for y in 0..height {
        let yc = y as f64;
        xs.clear();
        for ring in contours {
            let n = ring.len();
            for k in 0..n {
                let ([x0, y0], [x1, y1]) = (ring[k], ring[(k + 1) % n]);
                if (y0 > yc) != (y1 > yc) {
                    xs.push(x0 + (yc - y0) * (x1 - x0) / (y1 - y0));
                }
            }
        }
        xs.sort_by(f64::total_cmp);
        // A centre is inside when an odd number of crossings lie at or left of it.
        for pair in xs.chunks_exact(2) {
            let clamp = |c: f64| (c.ceil().max(0.0) as usize).min(width);
            let row = &mut out[y * width..(y + 1) * width];
            row[clamp(pair[0])..clamp(pair[1]).max(clamp(pair[0]))].fill(true);
        }
    }
    out
}

/// Whether `(x, y)` is inside the contours by the even-odd rule.
pub fn even_odd(contours: &[Contour], x: f64, y: f64) -> bool {
    let mut inside = false;
    for ring in contours {
        let n = ring.len();
        for k in 0..n {
            let ([x0, y0], [x1, y1]) = (ring[k], ring[(k + 1) % n]);
            if (y0 > y) != (y1 > y) && x < x0 + (y - y0) * (x1 - x0) / (y1 - y0) {
                inside = !inside;
            }
        }
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(rows: &[&str]) -> (Vec<bool>, usize, usize) {
        let w = rows[0].len();
        let data = rows.iter().flat_map(|r| r.chars().map(|c| c == '#')).collect();
        (data, w, rows.len())
    }

    /// The even-odd rule at every pixel centre gives the mask back, for rings and for
    /// keyholes; keyholes also by the non-zero winding rule and polygon by polygon (a union
    /// of fills, as rt-utils reads), and every hole is joined.
    fn assert_round_trip(rows: &[&str]) -> Vec<Contour> {
        let (mask, w, h) = parse(rows);
        let cs = contours(&mask, w, h);
        let keyholes = polygons(&mask, w, h, super::super::keyhole::Holes::Keyhole);
        for y in 0..h {
            for x in 0..w {
                let (px, py, m) = (x as f64, y as f64, mask[y * w + x]);
                assert_eq!(even_odd(&cs, px, py), m, "pixel ({x}, {y}) of {rows:?} with {cs:?}");
                assert_eq!(
                    even_odd(&keyholes, px, py),
                    m,
                    "keyholes at ({x}, {y}) of {rows:?}: {keyholes:?}"
                );
                let union = keyholes.iter().any(|k| even_odd(std::slice::from_ref(k), px, py));
                assert_eq!(union, m, "keyholes one by one at ({x}, {y}) of {rows:?}: {keyholes:?}");
                assert_eq!(winding(&keyholes, px, py) != 0, m, "non-zero at ({x}, {y}) of {rows:?}");
            }
        }
        assert_eq!(fill_even_odd(&cs, w, h), mask, "rows filled: {rows:?}");
        assert_eq!(fill_even_odd(&keyholes, w, h), mask, "keyholes filled: {rows:?}");
        cs
    }

    /// The winding number of `(x, y)` around the contours.
    fn winding(contours: &[Contour], x: f64, y: f64) -> i32 {
        let mut w = 0;
        for ring in contours {
            for k in 0..ring.len() {
                let ([x0, y0], [x1, y1]) = (ring[k], ring[(k + 1) % ring.len()]);
                let side = (x1 - x0) * (y - y0) - (x - x0) * (y1 - y0);
                if y0 <= y && y1 > y && side > 0.0 {
                    w += 1;
                } else if y0 > y && y1 <= y && side < 0.0 {
                    w -= 1;
                }
            }
        }
        w
    }

    #[test]
    fn a_square_is_one_contour_of_four_corners_cut_at_the_edge_midpoints() {
        let cs = assert_round_trip(&["....", ".##.", ".##.", "...."]);
        assert_eq!(cs.len(), 1);
        // Marching squares cuts the corners: a square of 2 × 2 pixels gives an octagon.
        assert_eq!(cs[0].len(), 8);
        for p in &cs[0] {
            assert!(p[0] >= 0.5 && p[0] <= 2.5 && p[1] >= 0.5 && p[1] <= 2.5, "{p:?}");
        }
    }

    #[test]
    fn holes_islands_saddles_and_borders_round_trip() {
        let ring = assert_round_trip(&["#####", "#...#", "#.#.#", "#...#", "#####"]);
        assert_eq!(ring.len(), 3, "outer, hole, island in the hole");
        let (mask, w, h) = parse(&["#####", "#...#", "#.#.#", "#...#", "#####"]);
        let keyholes = polygons(&mask, w, h, super::super::keyhole::Holes::Keyhole);
        assert_eq!(keyholes.len(), 2, "the outer joined with its hole, the island its own");
        let saddle = assert_round_trip(&["#.", ".#"]);
        assert_eq!(saddle.len(), 2, "diagonal neighbours are two islands");
        assert_eq!(assert_round_trip(&["#"]).len(), 1);
        assert!(assert_round_trip(&["...", "..."]).is_empty());
        assert_round_trip(&["##..#", "#.#.#", ".#..#", "#####", "#.#.."]);
    }

    #[test]
    fn random_masks_round_trip() {
        let mut state = 7u64;
        for m in 0..400 {
            let (height, width) = (9 + m % 7, 11 + m % 5);
            let rows: Vec<String> = (0..height)
                .map(|_| {
                    (0..width)
                        .map(|_| {
                            state = state
                                .wrapping_mul(6364136223846793005)
                                .wrapping_add(1442695040888963407);
                            if (state >> 33).is_multiple_of(3) {
                                '.'
                            } else {
                                '#'
                            }
                        })
                        .collect()
                })
                .collect();
            let refs: Vec<&str> = rows.iter().map(String::as_str).collect();
            assert_round_trip(&refs);
        }
    }

    /// Found by fuzzing: a 128 × 128 slice of noise (thousands of rings) took seconds to join
    /// by keyholes. Past `MAX_KEYHOLE_RINGS` the slice is written as rings, at once, and still
    /// read back exactly.
    #[test]
    fn a_slice_of_noise_is_written_as_rings_at_once_and_read_back_exactly() {
        let (w, h) = (128, 128);
        let mut rng = crate::rng::Rng::new(12345);
        let mask: Vec<bool> = (0..w * h).map(|_| rng.below(2) == 0).collect();
        let start = std::time::Instant::now();
        let written = polygons(&mask, w, h, super::super::keyhole::Holes::Keyhole);
        assert!(start.elapsed().as_secs_f64() < 0.5, "{:?}", start.elapsed());
        assert!(written.len() > super::super::keyhole::MAX_KEYHOLE_RINGS);
        assert_eq!(written.len(), contours(&mask, w, h).len(), "written as rings");
        assert_eq!(fill_even_odd(&written, w, h), mask);
    }
}
