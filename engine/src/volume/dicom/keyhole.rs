//! Holes as keyholes: each hole joined to the ring that encloses it by a zero-width cut, so an
//! island with its holes is one simple polygon that no nesting convention can misread
//! (planning systems and converters differ on nested contours: plastimatch drops islands
//! inside holes, rt-utils fills holes). Islands inside holes stay their own polygons, with
//! their own holes joined in turn.
//!
//! A cut runs right, horizontally, from a hole's vertex on a half-pixel row (between pixel
//! centre rows, so no pixel centre lies on it) to the first edge it meets, which must belong
//! to the enclosing ring or a hole already joined. Every coordinate is an integer in doubled
//! pixel units (contour edges are horizontal, vertical or diagonal), so the cut points are
//! exact. A hole no cut can reach stays a ring of its own (the even-odd rule still reads it
//! right); none was seen in the tests.

use super::contour::Point;

/// How holes are written in an RTSTRUCT.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Holes {
    /// Joined to their island by a zero-width cut: every contour is one simple polygon.
    #[default]
    Keyhole,
    /// Separate contours inside their island, read with the even-odd rule.
    Rings,
}

impl std::str::FromStr for Holes {
    type Err = String;
    fn from_str(s: &str) -> Result<Holes, String> {
        match s {
            "keyhole" => Ok(Holes::Keyhole),
            "rings" => Ok(Holes::Rings),
            _ => Err(format!("holes: {s:?} is not keyhole or rings")),
        }
    }
}

/// Most rings of one slice joined by keyholes. Joining is quadratic in the rings (each ring's
/// nesting, each cut against every other ring): a slice of more (a noisy mask, not a tumour;
/// found by fuzzing, where a 128 × 128 slice of noise took seconds) is written as rings, which
/// the even-odd rule reads right.
pub const MAX_KEYHOLE_RINGS: usize = 256;

/// The rings of one slice with every hole joined to its enclosing ring where a cut reaches it
/// (all left as rings past [`MAX_KEYHOLE_RINGS`]).
pub(super) fn join(rings: Vec<Vec<Point>>) -> Vec<Vec<Point>> {
    if rings.len() > MAX_KEYHOLE_RINGS {
        return rings;
    }
    let depth: Vec<usize> = (0..rings.len())
        .map(|r| {
            (0..rings.len())
                .filter(|&o| o != r && contains(&rings[o], rings[r][0]))
                .count()
        })
        .collect();
    let parent = |h: usize| (0..rings.len()).find(|&o| depth[o] + 1 == depth[h] && contains(&rings[o], rings[h][0]));
    let mut holes_of: Vec<Vec<usize>> = vec![Vec::new(); rings.len()];
    for h in (0..rings.len()).filter(|&h| depth[h] % 2 == 1) {
        if let Some(p) = parent(h) {
            holes_of[p].push(h);
        }
    }
    let mut out = Vec::new();
    for outer in (0..rings.len()).filter(|&r| depth[r].is_multiple_of(2)) {
        let others: Vec<&[Point]> = (0..rings.len())
            .filter(|&o| o != outer && !holes_of[outer].contains(&o))
            .map(|o| rings[o].as_slice())
            .collect();
        let holes: Vec<&[Point]> = holes_of[outer].iter().map(|&h| rings[h].as_slice()).collect();
        let (merged, unjoined) = join_holes(rings[outer].clone(), holes, &others);
        out.push(merged);
        out.extend(unjoined);
    }
    let orphans = (0..rings.len()).filter(|&h| depth[h] % 2 == 1 && parent(h).is_none());
    out.extend(orphans.map(|h| rings[h].clone()));
    out
}

/// `outer` with as many of `holes` joined as cuts reach, and the holes left as rings.
fn join_holes(mut merged: Vec<Point>, holes: Vec<&[Point]>, others: &[&[Point]]) -> (Vec<Point>, Vec<Vec<Point>>) {
    let mut pending: Vec<&[Point]> = holes;
    loop {
        let before = pending.len();
        let mut k = 0;
        while k < pending.len() {
            let blockers: Vec<&[Point]> = pending.iter().copied().chain(others.iter().copied()).collect();
            match cut(&merged, pending[k], &blockers) {
                Some((end, v)) => {
                    merged = splice(&merged, end, pending[k], v);
                    pending.remove(k);
                }
                None => k += 1,
            }
        }
        if pending.is_empty() || pending.len() == before {
            break;
        }
    }
    (merged, pending.into_iter().map(<[Point]>::to_vec).collect())
}

/// Where a cut ends on the joined polygon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Inside edge `e` (from point `e` to `e + 1`), at this point.
    Edge(usize, Point),
    /// At vertex `k`.
    Vertex(usize),
}

/// The four directions a cut may run, as maps that turn each into "right, along a row of odd
/// y" (a half-pixel row or column: no pixel centre lies on a cut), and their inverses.
type Map = fn(Point) -> Point;
const DIRECTIONS: [(Map, Map); 4] = [
    (|p| p, |p| p),
    (|(x, y)| (-x, y), |(x, y)| (-x, y)),
    (|(x, y)| (y, x), |(x, y)| (y, x)),
    (|(x, y)| (-y, x), |(x, y)| (y, -x)),
];

/// A cut from a vertex `v` of `hole` to where it ends on `merged`, or `None` when every cut
/// meets something else first or ends ambiguously.
fn cut(merged: &[Point], hole: &[Point], blockers: &[&[Point]]) -> Option<(End, usize)> {
    DIRECTIONS.iter().find_map(|&(to, back)| {
        let map = |r: &[Point]| r.iter().map(|&p| to(p)).collect::<Vec<Point>>();
        let (m, h) = (map(merged), map(hole));
        let b: Vec<Vec<Point>> = blockers.iter().map(|r| map(r)).collect();
        let b: Vec<&[Point]> = b.iter().map(Vec::as_slice).collect();
        let mut starts: Vec<usize> = (0..h.len()).filter(|&v| h[v].1 % 2 != 0).collect();
        starts.sort_by_key(|&v| std::cmp::Reverse(h[v].0));
        starts.into_iter().find_map(|v| {
            let end = match cut_right(&m, h[v], &b)? {
                End::Vertex(k) => End::Vertex(occurrence(merged, k, hole[v])?),
                End::Edge(e, p) => End::Edge(e, back(p)),
            };
            Some((end, v))
        })
    })
}

/// Where the ray right from `(vx, vy)` first meets `merged`, if nothing in `blockers` comes
/// first and it is one place.
fn cut_right(merged: &[Point], (vx, vy): Point, blockers: &[&[Point]]) -> Option<End> {
    let (x, end) = nearest(merged, vx, vy)?;
    let blocked = blockers
        .iter()
        .filter_map(|b| nearest(b, vx, vy))
        .any(|(bx, _)| bx <= x);
    if blocked {
        return None;
    }
    end
}

/// The first crossing of the ray right from `(vx, vy)` with `ring`: its x, and where it ends
/// (`None`: two places at once).
fn nearest(ring: &[Point], vx: i64, vy: i64) -> Option<(i64, Option<End>)> {
    let n = ring.len();
    let mut best: Option<(i64, Option<End>)> = None;
    for e in 0..n {
        let (a, b) = (ring[e], ring[(e + 1) % n]);
        if a.1 == b.1 || vy < a.1.min(b.1) || vy > a.1.max(b.1) {
            continue;
        }
        // Edges are horizontal, vertical or diagonal: the crossing is an integer.
        let x = a.0 + (vy - a.1) * (b.0 - a.0) / (b.1 - a.1);
        if x <= vx {
            continue;
        }
        let end = match (vy == a.1, vy == b.1) {
            (true, _) => End::Vertex(e),
            (_, true) => End::Vertex((e + 1) % n),
            _ => End::Edge(e, (x, vy)),
        };
        best = match best {
            Some((bx, _)) if bx < x => best,
            Some((bx, Some(prev))) if bx == x && prev == end => best,
            Some((bx, _)) if bx == x => Some((x, None)),
            _ => Some((x, Some(end))),
        };
    }
    best
}

/// `merged` with `hole` spliced in by the cut from `hole[v]` to `end`.
fn splice(merged: &[Point], end: End, hole: &[Point], v: usize) -> Vec<Point> {
    let (k, point) = match end {
        End::Edge(e, p) => (e, Some(p)),
        End::Vertex(k) => (k, None),
    };
    let back = point.unwrap_or(merged[k]);
    let mut out = Vec::with_capacity(merged.len() + hole.len() + 3);
    out.extend_from_slice(&merged[..=k]);
    out.extend(point);
    out.extend_from_slice(&hole[v..]);
    out.extend_from_slice(&hole[..=v]);
    out.push(back);
    out.extend_from_slice(&merged[k + 1..]);
    out
}

/// The one visit of the point `merged[k]` (a cut end is visited twice) whose interior angle
/// holds the direction towards `to`, if exactly one does.
fn occurrence(merged: &[Point], k: usize, to: Point) -> Option<usize> {
    use std::f64::consts::TAU;
    let w = merged[k];
    let n = merged.len();
    let area2: i64 = (0..n)
        .map(|i| {
            let (a, b) = (merged[i], merged[(i + 1) % n]);
            a.0 * b.1 - b.0 * a.1
        })
        .sum();
    let angle = |p: Point| ((p.1 - w.1) as f64).atan2((p.0 - w.0) as f64);
    // The interior lies left of every edge when the area is positive, right of it otherwise:
    // the interior angle at a visit sweeps from the next point towards the previous one.
    let sweep = |u: f64, v: f64| {
        if area2 > 0 {
            (v - u).rem_euclid(TAU)
        } else {
            (u - v).rem_euclid(TAU)
        }
    };
    let holds = |i: usize| {
        let next = angle(merged[(i + 1) % n]);
        let (d, span) = (sweep(next, angle(to)), sweep(next, angle(merged[(i + n - 1) % n])));
        d > 1e-9 && d < span - 1e-9
    };
    let mut visits = (0..n).filter(|&i| merged[i] == w && holds(i));
    match (visits.next(), visits.next()) {
        (Some(i), None) => Some(i),
        _ => None,
    }
}

/// Whether `p` is inside `ring` (even-odd; `p` never lies on another ring's boundary).
fn contains(ring: &[Point], p: Point) -> bool {
    let n = ring.len();
    let mut inside = false;
    for k in 0..n {
        let (a, b) = (ring[k], ring[(k + 1) % n]);
        if (a.1 > p.1) != (b.1 > p.1) {
            // p.0 < a.0 + (p.1 - a.1) (b.0 - a.0) / (b.1 - a.1), without division.
            let lhs = (p.0 - a.0) * (b.1 - a.1);
            let rhs = (p.1 - a.1) * (b.0 - a.0);
            if (b.1 > a.1 && lhs < rhs) || (b.1 < a.1 && lhs > rhs) {
                inside = !inside;
            }
        }
    }
    inside
}
