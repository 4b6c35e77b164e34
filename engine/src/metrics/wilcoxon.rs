//! Paired Wilcoxon signed-rank test, as `scipy.stats.wilcoxon` 1.17 computes it with its
//! defaults (`zero_method="wilcox"`, `correction=False`, `alternative="two-sided"`,
//! `method="auto"`), and the Holm step-down correction.
//!
//! `method="auto"` (scipy >= 1.15) chooses, on the full sample of `n` differences (zeros
//! included):
//! - `n > 50`: normal approximation with tie correction;
//! - `n <= 50`, no zero and no tie: the exact null distribution of `R+`;
//! - `n <= 13` with zeros or ties: an exact permutation test over all `2^n` sign flips (scipy
//!   runs `permutation_test`, deterministic there);
//! - otherwise the normal approximation.
//!
//! METHOD.md words the defaults as "exact without ties for n <= 50, else normal approximation";
//! the permutation branch for small tied samples is what scipy actually does, and matching scipy
//! is the point. Older scipy (< 1.15) used the normal approximation there instead: pass
//! [`Method::Asymptotic`] to get it. The statistic reported is `min(R+, R-)` (two-sided).

use serde::{Deserialize, Serialize};

/// How zero differences are treated (scipy's `zero_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ZeroMethod {
    /// Drop zero differences before ranking (Wilcoxon; the default).
    #[default]
    Wilcox,
    /// Rank with the zeros, then drop their ranks (Pratt).
    Pratt,
    /// Rank with the zeros and split their ranks between `R+` and `R-`.
    Zsplit,
}

/// How the P value is computed (scipy's `method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// scipy's choice (see the module docs).
    #[default]
    Auto,
    /// Exact null distribution of `R+` (not exact with ties or zeros: scipy rounds `R+`).
    Exact,
    /// Normal approximation with tie correction.
    Asymptotic,
}

/// Options of [`wilcoxon`]; the default is scipy's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Options {
    /// Zero differences.
    pub zero_method: ZeroMethod,
    /// Continuity correction of the normal approximation (default off).
    pub correction: bool,
    /// P value method.
    pub method: Method,
}

/// The test's result.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Wilcoxon {
    /// Pairs given (zeros included).
    pub n: usize,
    /// Zero differences among them.
    pub zeros: usize,
    /// `min(R+, R-)`.
    pub statistic: f64,
    /// Two-sided P value.
    pub p_value: f64,
    /// z statistic (`-|z|`) when the normal approximation was used.
    pub z: Option<f64>,
    /// What computed the P value: `exact`, `permutation` or `asymptotic`.
    pub method: &'static str,
}

/// Wilcoxon signed-rank test of the differences `x - y`; `None` without pairs, or when the
/// normal approximation has no non-zero difference to work with (scipy: NaN).
pub fn wilcoxon(x: &[f64], y: &[f64], options: Options) -> Option<Wilcoxon> {
    let d: Vec<f64> = x.iter().zip(y).map(|(a, b)| a - b).collect();
    wilcoxon_differences(&d, options)
}

/// [`wilcoxon`] on the differences themselves (NaN not expected; `±inf` rank as extremes).
pub fn wilcoxon_differences(d: &[f64], options: Options) -> Option<Wilcoxon> {
    let n = d.len();
    if n == 0 {
        return None;
    }
    let zeros = d.iter().filter(|&&v| v == 0.0).count();
    let st = statistic(d, options.zero_method);
    let method = match options.method {
        Method::Auto if n > 50 => "asymptotic",
        Method::Auto if !(st.has_ties || zeros > 0) => "exact",
        Method::Auto if n <= 13 => "permutation",
        Method::Auto | Method::Asymptotic => "asymptotic",
        Method::Exact => "exact",
    };
    let statistic = st.r_plus.min(st.r_minus);
    let (p_value, z) = match method {
        "asymptotic" => {
            let mut z = (st.r_plus - st.mean) / st.se;
            if !z.is_finite() {
                return None;
            }
            if options.correction {
                z -= z.signum() * 0.5 / st.se;
            }
            // scipy: 2 * ndtr(-|z|).
            let p = 2.0 * normal_sf(z.abs());
            (p, Some(-z.abs()))
        }
        "exact" => (exact_p(st.count, st.r_plus), None),
        _ => (permutation_p(d, options.zero_method, st.r_plus), None),
    };
    Some(Wilcoxon {
        n,
        zeros,
        statistic,
        p_value,
        z,
        method,
    })
}

/// Upper tail of the standard normal, `0.5 erfc(x / sqrt 2)`.
fn normal_sf(x: f64) -> f64 {
    0.5 * libm::erfc(x / std::f64::consts::SQRT_2)
}

struct Statistic {
    r_plus: f64,
    r_minus: f64,
    /// Ranked values (`n` minus zeros for `wilcox`).
    count: usize,
    mean: f64,
    se: f64,
    has_ties: bool,
}

/// Average ranks of `|d|` over the values kept, and the tie group sizes (scipy `_rankdata`).
fn ranks(abs: &[f64]) -> (Vec<f64>, Vec<usize>) {
    let mut order: Vec<usize> = (0..abs.len()).collect();
    order.sort_by(|&a, &b| abs[a].total_cmp(&abs[b]));
    let mut r = vec![0.0; abs.len()];
    let mut ties = Vec::new();
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && abs[order[end]] == abs[order[start]] {
            end += 1;
        }
        let avg = (start + 1 + end) as f64 / 2.0;
        for &o in &order[start..end] {
            r[o] = avg;
        }
        ties.push(end - start);
        start = end;
    }
    (r, ties)
}

/// scipy's `_wilcoxon_statistic`.
fn statistic(d: &[f64], zero_method: ZeroMethod) -> Statistic {
    let kept: Vec<f64> = match zero_method {
        ZeroMethod::Wilcox => d.iter().copied().filter(|&v| v != 0.0).collect(),
        _ => d.to_vec(),
    };
    let abs: Vec<f64> = kept.iter().map(|v| v.abs()).collect();
    let (r, ties) = ranks(&abs);
    let count = kept.len() as f64;
    let mut r_plus: f64 = kept.iter().zip(&r).filter(|(v, _)| **v > 0.0).map(|(_, r)| r).sum();
    let mut r_minus: f64 = kept.iter().zip(&r).filter(|(v, _)| **v < 0.0).map(|(_, r)| r).sum();
    let has_ties = ties.iter().any(|&t| t > 1);
    let n_zero = kept.iter().filter(|&&v| v == 0.0).count() as f64;
    if zero_method == ZeroMethod::Zsplit {
        let half: f64 = kept
            .iter()
            .zip(&r)
            .filter(|(v, _)| **v == 0.0)
            .map(|(_, r)| r)
            .sum::<f64>()
            / 2.0;
        r_plus += half;
        r_minus += half;
    }
    let mut mean = count * (count + 1.0) * 0.25;
    let mut se = count * (count + 1.0) * (2.0 * count + 1.0);
    // Tie groups: the zeros are the first group (smallest |d|) when present.
    let mut tie_groups: &[usize] = &ties;
    if zero_method == ZeroMethod::Pratt {
        mean -= n_zero * (n_zero + 1.0) * 0.25;
        se -= n_zero * (n_zero + 1.0) * (2.0 * n_zero + 1.0);
        if n_zero > 0.0 {
            tie_groups = &ties[1..];
        }
    }
    let tie_correct: f64 = tie_groups.iter().map(|&t| (t as f64).powi(3) - t as f64).sum();
    let se = ((se - tie_correct / 2.0) / 24.0).sqrt();
    Statistic {
        r_plus,
        r_minus,
        count: kept.len(),
        mean,
        se,
        has_ties,
    }
}

/// Two-sided exact P value of `R+` for `n` ranked values (scipy `WilcoxonDistribution`).
fn exact_p(n: usize, r_plus: f64) -> f64 {
    // counts[k] = number of subsets of {1..n} with sum k; total 2^n (exact in f64 to n = 53).
    let max = n * (n + 1) / 2;
    let mut counts = vec![0f64; max + 1];
    counts[0] = 1.0;
    for k in 1..=n {
        for s in (k..=k * (k + 1) / 2).rev() {
            counts[s] += counts[s - k];
        }
    }
    let total = 2f64.powi(n as i32);
    let mean = n as f64 * (n as f64 + 1.0) / 4.0;
    let sum = |a: usize, b: usize| -> f64 { counts[a..=b].iter().sum::<f64>() / total };
    // cdf(k) = P(R+ <= k), sf(k) = P(R+ >= k), scipy's branches on k <= mean.
    let cdf = |k: i64| -> f64 {
        if k < 0 {
            0.0
        } else if k as usize >= max {
            1.0
        } else if (k as f64) <= mean {
            sum(0, k as usize)
        } else {
            1.0 - sum(k as usize + 1, max)
        }
    };
    let sf = |k: i64| -> f64 {
        if k <= 0 {
            1.0
        } else if k as usize > max {
            0.0
        } else if (k as f64) <= mean {
            sum(k as usize, max)
        } else {
            1.0 - sum(0, k as usize - 1)
        }
    };
    let p = 2.0 * sf(r_plus.floor() as i64).min(cdf(r_plus.ceil() as i64));
    p.clamp(0.0, 1.0)
}

/// Exact permutation P value over all `2^n` sign flips of `d` (scipy `permutation_test`,
/// `permutation_type="samples"`, with its relative tolerance `100 eps |observed|`).
fn permutation_p(d: &[f64], zero_method: ZeroMethod, observed: f64) -> f64 {
    let n = d.len();
    // Ranks do not change under sign flips; R+ of a flip sums the ranks of the values made
    // positive (plus the zsplit half-ranks of the zeros, which no flip changes).
    let kept_idx: Vec<usize> = match zero_method {
        ZeroMethod::Wilcox => (0..n).filter(|&i| d[i] != 0.0).collect(),
        _ => (0..n).collect(),
    };
    let abs: Vec<f64> = kept_idx.iter().map(|&i| d[i].abs()).collect();
    let (r, _) = ranks(&abs);
    let mut rank_of = vec![0.0; n];
    for (m, &i) in kept_idx.iter().enumerate() {
        rank_of[i] = r[m];
    }
    let kept: Vec<bool> = {
        let mut k = vec![false; n];
        for &i in &kept_idx {
            k[i] = true;
        }
        k
    };
    let zero_half: f64 = if zero_method == ZeroMethod::Zsplit {
        (0..n).filter(|&i| d[i] == 0.0).map(|i| rank_of[i]).sum::<f64>() / 2.0
    } else {
        0.0
    };
    let gamma = (f64::EPSILON * 100.0 * observed).abs();
    let (mut less, mut greater) = (0u64, 0u64);
    let total = 1u64 << n;
    for mask in 0..total {
        let mut rp = 0.0;
        for i in 0..n {
            // Bit set: the sign of d[i] is flipped.
            let v = if mask >> i & 1 == 1 { -d[i] } else { d[i] };
            if kept[i] && v > 0.0 {
                rp += rank_of[i];
            }
        }
        rp += zero_half;
        less += (rp <= observed + gamma) as u64;
        greater += (rp >= observed - gamma) as u64;
    }
    let p = 2.0 * (less.min(greater) as f64) / total as f64;
    p.clamp(0.0, 1.0)
}

/// Holm's step-down adjusted P values, in the order given (NaN not expected).
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut out = vec![0.0; m];
    let mut running: f64 = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        let adj = ((m - rank) as f64 * p[i]).min(1.0);
        running = running.max(adj);
        out[i] = running;
    }
    out
}
