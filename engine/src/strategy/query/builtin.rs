//! The builtin query strategies and the name table.

use super::kmeans::{dist2, kmeans, nearest};
use super::{selection, Budget, Candidate, CandidatePool, Error, Needs, QueryStrategy, Reason, Scores, Selection};
use crate::rng::Rng;

/// Names `by_name` accepts.
pub const BUILTIN_NAMES: [&str; 9] = [
    "random",
    "random-case",
    "entropy",
    "bald",
    "margin",
    "stdr",
    "mada",
    "ugtst",
    "coreset",
];

/// The builtin strategy called `name`, with its default parameters.
pub fn by_name(name: &str) -> Result<Box<dyn QueryStrategy>, Error> {
    Ok(match name {
        "random" => Box::new(Random),
        "random-case" => Box::new(RandomCase),
        "entropy" => Box::new(ScoreRank::entropy()),
        "bald" => Box::new(ScoreRank::bald()),
        "margin" => Box::new(ScoreRank::margin()),
        "stdr" => Box::new(Stdr { far_share: 0.5 }),
        "mada" => Box::new(Stdr { far_share: 1.0 }),
        "ugtst" => Box::new(Ugtst {
            multiple: 3,
            iterations: 20,
        }),
        "coreset" => Box::new(Coreset),
        _ => return Err(Error::Unknown { name: name.to_string() }),
    })
}

/// Uniformly random rows (seeded).
#[derive(Debug, Clone, Copy)]
pub struct Random;

impl QueryStrategy for Random {
    fn name(&self) -> String {
        "random".into()
    }
    fn needs(&self) -> Needs {
        Needs::default()
    }
    fn select(&self, pool: &CandidatePool, budget: Budget, seed: u64) -> Result<Selection, Error> {
        let mut order: Vec<usize> = (0..pool.rows.len()).collect();
        Rng::new(seed).shuffle(&mut order);
        let picks: Vec<_> = order[..budget.resolve(order.len())]
            .iter()
            .map(|i| (*i, None, Reason::Random))
            .collect();
        Ok(selection("random", pool, &picks))
    }
}

/// Whole cases at random (seeded), as the paper's code draws its random baseline: every row
/// of each drawn case, cases in draw order. A fraction budget takes that fraction of the cases
/// (rounded, at least one); a count budget takes whole cases while their rows fit in it (at
/// least one case), so the selection may hold fewer rows than the count. On a volume pool it is
/// [`Random`].
#[derive(Debug, Clone, Copy)]
pub struct RandomCase;

impl QueryStrategy for RandomCase {
    fn name(&self) -> String {
        "random-case".into()
    }
    fn needs(&self) -> Needs {
        Needs::default()
    }
    fn select(&self, pool: &CandidatePool, budget: Budget, seed: u64) -> Result<Selection, Error> {
        let mut cases: Vec<(&str, Vec<usize>)> = Vec::new();
        for (i, row) in pool.rows.iter().enumerate() {
            match cases.iter_mut().find(|(case, _)| *case == row.case) {
                Some((_, rows)) => rows.push(i),
                None => cases.push((&row.case, vec![i])),
            }
        }
        Rng::new(seed).shuffle(&mut cases);
        let take = match budget {
            Budget::Fraction(_) => budget.resolve(cases.len()),
            Budget::Count(c) => {
                let mut rows = 0;
                let fit = cases.iter().take_while(|(_, r)| {
                    rows += r.len();
                    rows <= c
                });
                fit.count().max(1).min(cases.len())
            }
        };
        let picks: Vec<_> = (cases.iter().take(take))
            .flat_map(|(_, rows)| rows.iter().map(|i| (*i, None, Reason::Random)))
            .collect();
        Ok(selection("random-case", pool, &picks))
    }
}

/// Rows ranked by one uncertainty score: entropy and BALD descending, margin ascending.
#[derive(Debug, Clone, Copy)]
pub struct ScoreRank {
    name: &'static str,
    get: fn(&Scores) -> Option<f32>,
    descending: bool,
    needs: Needs,
}

impl ScoreRank {
    /// MC-dropout entropy, most uncertain first.
    pub fn entropy() -> Self {
        ScoreRank {
            name: "entropy",
            get: |s| s.entropy,
            descending: true,
            needs: Needs {
                entropy: true,
                ..Needs::default()
            },
        }
    }
    /// BALD, largest first.
    pub fn bald() -> Self {
        ScoreRank {
            name: "bald",
            get: |s| s.bald,
            descending: true,
            needs: Needs {
                bald: true,
                ..Needs::default()
            },
        }
    }
    /// Margin, smallest first.
    pub fn margin() -> Self {
        ScoreRank {
            name: "margin",
            get: |s| s.margin,
            descending: false,
            needs: Needs {
                margin: true,
                ..Needs::default()
            },
        }
    }
}

impl QueryStrategy for ScoreRank {
    fn name(&self) -> String {
        self.name.into()
    }
    fn needs(&self) -> Needs {
        self.needs
    }
    fn select(&self, pool: &CandidatePool, budget: Budget, _seed: u64) -> Result<Selection, Error> {
        let values = scores(pool, self.name, self.name, self.get)?;
        let order = ranked(&values, self.descending);
        let picks: Vec<_> = order[..budget.resolve(order.len())]
            .iter()
            .map(|i| (*i, Some(values[*i]), Reason::Uncertain))
            .collect();
        Ok(selection(self.name, pool, &picks))
    }
}

/// STDR, the dual reference (METHOD.md step 6): the `far_share` of the budget with the largest
/// distance to the source reference points, the rest with the smallest. `far_share` 1 is MADA.
#[derive(Debug, Clone, Copy)]
pub struct Stdr {
    /// Share of the budget taken from the far end (rounded half up). 0.5 for STDR.
    pub far_share: f64,
}

impl QueryStrategy for Stdr {
    fn name(&self) -> String {
        if self.far_share >= 1.0 { "mada" } else { "stdr" }.into()
    }
    fn needs(&self) -> Needs {
        Needs {
            stdr: true,
            ..Needs::default()
        }
    }
    fn select(&self, pool: &CandidatePool, budget: Budget, _seed: u64) -> Result<Selection, Error> {
        let name = self.name();
        let d = scores(pool, &name, "stdr_distance", |s| s.stdr_distance)?;
        let b = budget.resolve(d.len());
        let n_far = ((b as f64 * self.far_share.clamp(0.0, 1.0)).round() as usize).min(b);
        let far = ranked(&d, true);
        let mut taken = vec![false; d.len()];
        let mut picks = Vec::with_capacity(b);
        for &i in far.iter().take(n_far) {
            taken[i] = true;
            picks.push((i, Some(d[i]), Reason::Far));
        }
        for i in ranked(&d, false).into_iter().filter(|i| !taken[*i]).take(b - n_far) {
            picks.push((i, Some(d[i]), Reason::Near));
        }
        Ok(selection(&name, pool, &picks))
    }
}

/// UGTST-style: the `multiple` × budget most uncertain rows (entropy), clustered with K-means
/// on their feature vectors into `budget` groups; the row nearest each centroid is picked.
#[derive(Debug, Clone, Copy)]
pub struct Ugtst {
    /// How many uncertain rows per selected row enter the clustering. 3.
    pub multiple: usize,
    /// K-means iterations. 20.
    pub iterations: usize,
}

impl QueryStrategy for Ugtst {
    fn name(&self) -> String {
        "ugtst".into()
    }
    fn needs(&self) -> Needs {
        Needs {
            entropy: true,
            features: true,
            ..Needs::default()
        }
    }
    fn select(&self, pool: &CandidatePool, budget: Budget, seed: u64) -> Result<Selection, Error> {
        let entropy = scores(pool, "ugtst", "entropy", |s| s.entropy)?;
        let b = budget.resolve(entropy.len());
        let top: Vec<usize> = ranked(&entropy, true)
            .into_iter()
            .take(b * self.multiple.max(1))
            .collect();
        let points: Vec<Vec<f32>> = top.iter().map(|i| vectors(&pool.rows[*i]).to_vec()).collect();
        let clusters = kmeans(&points, b, self.iterations, seed);
        let mut taken = vec![false; top.len()];
        let mut picks = Vec::new();
        for centroid in &clusters.centroids {
            let best = (0..top.len()).filter(|j| !taken[*j]).min_by(|a, b| {
                dist2(&points[*a], centroid)
                    .total_cmp(&dist2(&points[*b], centroid))
                    .then(top[*a].cmp(&top[*b]))
            });
            if let Some(j) = best {
                taken[j] = true;
                picks.push((top[j], Some(entropy[top[j]]), Reason::Diverse));
            }
        }
        // Fewer distinct feature vectors than the budget: fill with the next most uncertain.
        for j in (0..top.len())
            .filter(|j| !taken[*j])
            .take(b.saturating_sub(picks.len()))
        {
            picks.push((top[j], Some(entropy[top[j]]), Reason::Uncertain));
        }
        Ok(selection("ugtst", pool, &picks))
    }
}

/// Coreset by k-center greedy on the feature vectors (descriptors when a row has none):
/// start from the row nearest the pool's mean, then repeatedly take the row farthest from
/// everything taken.
#[derive(Debug, Clone, Copy)]
pub struct Coreset;

impl QueryStrategy for Coreset {
    fn name(&self) -> String {
        "coreset".into()
    }
    fn needs(&self) -> Needs {
        Needs {
            features: true,
            ..Needs::default()
        }
    }
    fn select(&self, pool: &CandidatePool, budget: Budget, _seed: u64) -> Result<Selection, Error> {
        let points: Vec<&[f32]> = pool.rows.iter().map(vectors).collect();
        let b = budget.resolve(points.len());
        if b == 0 {
            return Ok(selection("coreset", pool, &[]));
        }
        let dim = points[0].len();
        let mean: Vec<f32> = (0..dim)
            .map(|j| points.iter().map(|p| p.get(j).copied().unwrap_or(0.0)).sum::<f32>() / points.len() as f32)
            .collect();
        let first = nearest(&mean, &points.iter().map(|p| p.to_vec()).collect::<Vec<_>>()).0;
        let mut gap: Vec<f64> = points.iter().map(|p| dist2(p, points[first])).collect();
        let mut picks = vec![(first, Some(0.0), Reason::Diverse)];
        gap[first] = f64::NEG_INFINITY;
        while picks.len() < b {
            let (i, g) = gap.iter().enumerate().fold(
                (0, f64::NEG_INFINITY),
                |best, (i, g)| if *g > best.1 { (i, *g) } else { best },
            );
            picks.push((i, Some(g.sqrt() as f32), Reason::Diverse));
            for (j, p) in points.iter().enumerate() {
                gap[j] = gap[j].min(dist2(p, points[i]));
            }
            gap[i] = f64::NEG_INFINITY;
        }
        Ok(selection("coreset", pool, &picks))
    }
}

/// A row's clustering vector: its features, or its descriptor when it has no features.
fn vectors(row: &Candidate) -> &[f32] {
    if row.features.is_empty() {
        &row.descriptor
    } else {
        &row.features
    }
}

/// Every row's `get` score, or the error naming the first row without a finite one.
fn scores(
    pool: &CandidatePool,
    strategy: &str,
    score: &'static str,
    get: fn(&Scores) -> Option<f32>,
) -> Result<Vec<f32>, Error> {
    pool.rows
        .iter()
        .enumerate()
        .map(|(row, c)| match get(&c.scores) {
            None => Err(Error::MissingScore {
                strategy: strategy.into(),
                score,
                row,
                case: c.case.clone(),
            }),
            Some(v) if !v.is_finite() => Err(Error::NonFinite {
                strategy: strategy.into(),
                score,
                row,
                case: c.case.clone(),
                value: v,
            }),
            Some(v) => Ok(v),
        })
        .collect()
}

/// Row indices sorted by value (descending or ascending), ties by index.
fn ranked(values: &[f32], descending: bool) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|a, b| {
        let c = values[*a].total_cmp(&values[*b]);
        (if descending { c.reverse() } else { c }).then(a.cmp(b))
    });
    order
}
