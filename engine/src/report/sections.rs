//! The report's sections, each from the results folder's files (see the module docs of
//! [`super`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::canvas::{colour, TRUTH};
use super::charts::{box_plot, chart, picks_grid, BoxSeries, Series};
use super::html::{escape, markdown};
use super::overlay::{overlay, Outline};
use super::{input, Error, Figure, Inputs, Section};
use crate::dataset::Split;
use crate::experiment::Domain;
use crate::metrics::stats::median;
use crate::strategy::query::{CandidatePool, Reason, Selection};
use crate::volume;

/// Reason colours in pick grids and distance plots.
fn reason_colour(r: Reason) -> super::canvas::Rgb {
    let p = super::canvas::PALETTE;
    match r {
        Reason::Far => p[0],
        Reason::Near => p[1],
        Reason::Uncertain => p[4],
        Reason::Diverse => p[2],
        Reason::Random => p[5],
        _ => p[7],
    }
}

fn reason_name(r: Reason) -> String {
    serde_json::to_value(r)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, Error> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(None);
    };
    serde_json::from_str(&text).map(Some).map_err(|e| input(path, e))
}

/// The results table of `table.md`, failures marked.
pub fn results(inputs: &Inputs) -> Section {
    Section {
        id: "results",
        title: "Results".into(),
        html: markdown(&inputs.table),
        figures: vec![],
    }
}

/// DSC and HD95 per domain and method, every case a point.
pub fn box_plots(inputs: &Inputs) -> Section {
    let mut figures = Vec::new();
    for d in &inputs.domains {
        for (metric, label, fixed) in [("dsc", "DSC", Some((0.0, 1.0))), ("hd95", "HD95 (mm)", None)] {
            let series: Vec<BoxSeries> = inputs
                .methods
                .iter()
                .enumerate()
                .map(|(n, m)| BoxSeries {
                    label: m.clone(),
                    colour: colour(n),
                    values: inputs
                        .rows(&d.id, m)
                        .map(|r| (r.case.clone(), if metric == "dsc" { r.dsc } else { r.hd95 }))
                        .collect(),
                })
                .collect();
            if series.iter().all(|s| s.values.iter().all(|v| v.1.is_none())) {
                continue; // nothing evaluated in this domain
            }
            let (canvas, drawn) = box_plot(&format!("{label}, domain {}", d.id), label, &series, fixed);
            figures.push(Figure {
                name: format!("box-{metric}-{}", d.id),
                caption: format!(
                    "{label} of domain {}'s test cases, one point per case and method (× in the inf band: a failure, \
                     one mask empty); boxes: quartiles, whiskers: 1.5 IQR; outliers carry their case id.",
                    d.id
                ),
                canvas,
                points: Some(drawn.points.iter().sum()),
                density: 2,
            });
        }
    }
    figures.extend(replicate_figures(inputs));
    Section {
        id: "box-plots",
        title: "Spread per domain and method".into(),
        html: String::new(),
        figures,
    }
}

/// With replicates: per domain, each replicate's median DSC per method, one point per
/// replicate (labelled `r0`, `r1`, …).
fn replicate_figures(inputs: &Inputs) -> Vec<Figure> {
    let mut figures = Vec::new();
    for d in &inputs.domains {
        let series: Vec<BoxSeries> = (inputs.methods.iter().enumerate())
            .filter_map(|(n, m)| {
                let (_, _, medians) = (inputs.replicate_medians.iter()).find(|(dd, mm, _)| *dd == d.id && mm == m)?;
                Some(BoxSeries {
                    label: m.clone(),
                    colour: colour(n),
                    values: (medians.iter().enumerate())
                        .map(|(r, v)| (format!("r{r}"), *v))
                        .collect(),
                })
            })
            .collect();
        if series.is_empty() {
            continue;
        }
        let replicates = series[0].values.len();
        let title = format!("Median DSC per replicate, domain {}", d.id);
        let (canvas, drawn) = box_plot(&title, "median DSC", &series, Some((0.0, 1.0)));
        figures.push(Figure {
            name: format!("replicates-dsc-{}", d.id),
            caption: format!(
                "Median test DSC of domain {} in each of the {replicates} replicates, one point per replicate and \
                 method: how far one run's table may move with another draw of the training noise.",
                d.id
            ),
            canvas,
            points: Some(drawn.points.iter().sum()),
            density: 2,
        });
    }
    figures
}

/// The method with the highest median DSC in `domain`, the supervised bound aside.
fn best_method<'a>(inputs: &'a Inputs, domain: &str) -> Option<&'a String> {
    let med = |m: &String| median(&inputs.rows(domain, m).filter_map(|r| r.dsc).collect::<Vec<_>>());
    inputs
        .methods
        .iter()
        .filter(|m| m.as_str() != "supervised")
        .filter_map(|m| med(m).map(|v| (m, v)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(m, _)| m)
}

/// The best, median and worst test case of each domain's best method, every method outlined.
pub fn cases(inputs: &Inputs) -> Result<Section, Error> {
    let mut figures = Vec::new();
    let mut html =
        String::from("<p class=\"legend\"><span style=\"color:rgb(221,204,119)\">&#9632;</span> ground truth");
    for (n, m) in inputs.methods.iter().enumerate() {
        let [r, g, b] = colour(n);
        html.push_str(&format!(
            " &nbsp; <span style=\"color:rgb({r},{g},{b})\">&#9632;</span> {}",
            escape(m)
        ));
    }
    html.push_str("</p>");
    for d in &inputs.domains {
        let Some(best) = best_method(inputs, &d.id) else {
            continue;
        };
        let mut ranked: Vec<_> = inputs.rows(&d.id, best).filter(|r| r.dsc.is_some()).collect();
        ranked.sort_by(|a, b| b.dsc.unwrap_or(0.0).total_cmp(&a.dsc.unwrap_or(0.0)));
        if ranked.is_empty() {
            continue;
        }
        let picks = [("best", 0), ("median", ranked.len() / 2), ("worst", ranked.len() - 1)];
        let mut seen = BTreeSet::new();
        for (what, at) in picks {
            let row = ranked[at];
            if seen.insert(&row.case) {
                figures.push(case_figure(inputs, d, best, what, &row.case)?);
            }
        }
    }
    Ok(Section {
        id: "cases",
        title: "Best, median and worst cases".into(),
        html,
        figures,
    })
}

fn case_figure(inputs: &Inputs, d: &Domain, best: &str, what: &str, case: &str) -> Result<Figure, Error> {
    let entry = inputs.manifest.cases().iter().find(|c| c.id == case);
    let entry = entry.ok_or_else(|| {
        input(
            &inputs.dir.join("cases.csv"),
            format!("case {case} is not in the manifest"),
        )
    })?;
    let image = volume::read_volume(&entry.image).map_err(|e| input(&entry.image, e))?;
    let truth = match inputs.manifest.label(entry, d.rater.as_deref()) {
        Some((_, p)) => Some(volume::read_label_map(p).map_err(|e| input(p, e))?),
        None => None,
    };
    let [w, h, depth] = image.geometry.dims;
    let masks: Vec<(usize, Vec<u8>)> = inputs
        .methods
        .iter()
        .enumerate()
        .filter_map(|(n, m)| {
            let row = inputs.rows(&d.id, m).find(|r| r.case == case)?;
            let mask = volume::read_label_map(row.prediction.as_ref()?).ok()?;
            (mask.geometry.dims == image.geometry.dims).then_some((n, mask.data))
        })
        .collect();
    let area = |data: &[u8], k: usize| data[k * w * h..(k + 1) * w * h].iter().filter(|v| **v > 0).count();
    let reference = truth
        .as_ref()
        .map(|t| t.data.clone())
        .or_else(|| masks.first().map(|m| m.1.clone()));
    let k = reference
        .map(|data| {
            (0..depth)
                .max_by_key(|k| (area(&data, *k), std::cmp::Reverse(*k)))
                .unwrap_or(0)
        })
        .unwrap_or(depth / 2);
    let slice = |data: &[u8]| -> Vec<bool> { data[k * w * h..(k + 1) * w * h].iter().map(|v| *v > 0).collect() };
    let mut all: Vec<Vec<bool>> = masks.iter().map(|(_, m)| slice(m)).collect();
    all.extend(truth.as_ref().map(|t| slice(&t.data)));
    let window = around(&all, w, h);
    let truth_slice = truth.as_ref().map(|t| crop(&slice(&t.data), w, window));
    let method_slices: Vec<(usize, Vec<bool>)> = masks.iter().map(|(n, m)| (*n, crop(&slice(m), w, window))).collect();
    let mut outlines: Vec<Outline<'_>> = method_slices
        .iter()
        .map(|(n, s)| Outline {
            mask: s,
            colour: colour(*n),
        })
        .collect();
    if let Some(t) = &truth_slice {
        outlines.push(Outline { mask: t, colour: TRUTH });
    }
    let canvas = overlay(&crop(image.axial(k), w, window), window.2, window.3, &outlines);
    let scores: Vec<String> = inputs
        .methods
        .iter()
        .filter_map(|m| {
            let r = inputs.rows(&d.id, m).find(|r| r.case == case)?;
            Some(format!("{m}: DSC {} / HD95 {}", fmt(r.dsc), fmt(r.hd95)))
        })
        .collect();
    Ok(Figure {
        name: format!("case-{}-{what}-{case}", d.id),
        caption: format!(
            "Domain {}, {what} case of {best}: {case}, axial slice {k} (the most tumour), cropped around the masks \
             (voxel grid as stored). {}.",
            d.id,
            scores.join("; ")
        ),
        canvas,
        points: None,
        density: 2,
    })
}

/// The window `(x, y, width, height)` around every mask's pixels: twice their extent, at least
/// 32 pixels (the whole slice when it is smaller or nothing is drawn).
fn around(masks: &[Vec<bool>], w: usize, h: usize) -> (usize, usize, usize, usize) {
    let on: Vec<(usize, usize)> = masks
        .iter()
        .flat_map(|m| m.iter().enumerate().filter(|p| *p.1).map(|(n, _)| (n % w, n / w)))
        .collect();
    if on.is_empty() {
        return (0, 0, w, h);
    }
    let span = |v: Vec<usize>, n: usize| {
        let (lo, hi) = (*v.iter().min().unwrap_or(&0), *v.iter().max().unwrap_or(&0));
        let size = (2 * (hi - lo + 1)).max(32).min(n);
        let start = (lo + hi).div_ceil(2).saturating_sub(size / 2).min(n - size);
        (start, size)
    };
    let (x, cw) = span(on.iter().map(|p| p.0).collect(), w);
    let (y, ch) = span(on.iter().map(|p| p.1).collect(), h);
    let side = cw.max(ch);
    let (x, y) = (x.min(w.saturating_sub(side)), y.min(h.saturating_sub(side)));
    (x, y, side.min(w), side.min(h))
}

/// The `window` of a `w`-wide slice.
fn crop<T: Copy>(slice: &[T], w: usize, (x, y, cw, ch): (usize, usize, usize, usize)) -> Vec<T> {
    (y..y + ch)
        .flat_map(|j| slice[j * w + x..j * w + x + cw].iter().copied())
        .collect()
}

fn fmt(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.3}"),
        Some(_) => "inf".into(),
        None => "-".into(),
    }
}

/// Each query's picks on its domain's pool, STDR's distances, and the tumour slices labelled.
pub fn queries(inputs: &Inputs) -> Result<Section, Error> {
    let mut figures = Vec::new();
    let mut html = String::from(
        "<table><tr><th>domain</th><th>query</th><th>picked</th><th>with tumour</th><th>pool</th><th>pool with tumour</th></tr>",
    );
    for d in &inputs.domains {
        let pool_cases = d.cases(&inputs.manifest, Split::Train);
        let mut tumour: Vec<(String, Vec<bool>)> = Vec::new();
        for c in &pool_cases {
            let Some((_, p)) = inputs.manifest.label(c, d.rater.as_deref()) else {
                continue;
            };
            let l = volume::read_label_map(p).map_err(|e| input(p, e))?;
            let [w, h, depth] = l.geometry.dims;
            let per_slice = (0..depth)
                .map(|k| l.data[k * w * h..(k + 1) * w * h].iter().any(|v| *v > 0))
                .collect();
            tumour.push((c.id.clone(), per_slice));
        }
        let row_of: BTreeMap<&str, usize> = tumour.iter().enumerate().map(|(n, (id, _))| (id.as_str(), n)).collect();
        let pool_slices: usize = tumour.iter().map(|t| t.1.len()).sum();
        let pool_tumour: usize = tumour.iter().map(|t| t.1.iter().filter(|v| **v).count()).sum();
        let mut shown = BTreeSet::new();
        for m in &inputs.methods {
            let Some(sel) = read_json::<Selection>(&inputs.run_dir(&d.id, m).join("selection.json"))? else {
                continue;
            };
            if !shown.insert(sel.strategy.clone()) {
                continue; // the same query's selection, adapted another way
            }
            let mut picks = Vec::new();
            let mut reasons: Vec<Reason> = Vec::new();
            let (mut picked, mut with_tumour) = (0, 0);
            for item in &sel.items {
                let Some(&r) = row_of.get(item.case.as_str()) else {
                    continue;
                };
                let slices: Vec<usize> = match item.slice {
                    Some(k) => vec![k],
                    None => (0..tumour[r].1.len()).collect(),
                };
                if !reasons.contains(&item.reason) {
                    reasons.push(item.reason);
                }
                for k in slices {
                    picked += 1;
                    with_tumour += usize::from(tumour[r].1.get(k).copied().unwrap_or(false));
                    picks.push((r, k, reason_colour(item.reason)));
                }
            }
            html.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{picked}</td><td>{with_tumour}</td><td>{pool_slices}</td><td>{pool_tumour}</td></tr>",
                escape(&d.id),
                escape(&sel.strategy)
            ));
            let names: Vec<(String, _)> = reasons.iter().map(|r| (reason_name(*r), reason_colour(*r))).collect();
            let legend: Vec<(&str, _)> = names.iter().map(|(n, c)| (n.as_str(), *c)).collect();
            figures.push(Figure {
                name: format!("picks-{}-{}", d.id, sel.strategy),
                caption: format!(
                    "What {} picked in domain {}: a row per pool case, a column per slice; grey: tumour in the label; \
                     {picked} picked, {with_tumour} with tumour.",
                    sel.strategy, d.id
                ),
                canvas: picks_grid(&format!("{} picks, {}", sel.strategy, d.id), &tumour, &picks, &legend),
                points: None,
                density: 2,
            });
            if sel.strategy == "stdr" {
                if let Some(f) = stdr_figure(inputs, d, &sel)? {
                    figures.push(f);
                }
            }
        }
    }
    html.push_str("</table>");
    Ok(Section {
        id: "queries",
        title: "What each query picked".into(),
        html,
        figures,
    })
}

/// STDR's distances over the pool, sorted, its far and near picks marked.
fn stdr_figure(inputs: &Inputs, d: &Domain, sel: &Selection) -> Result<Option<Figure>, Error> {
    let Some(pool) = read_json::<CandidatePool>(&inputs.dir.join("runs").join(&d.id).join("pool.json"))? else {
        return Ok(None);
    };
    let mut rows: Vec<(f64, &str, Option<usize>)> = pool
        .rows
        .iter()
        .filter_map(|r| Some((f64::from(r.scores.stdr_distance?), r.case.as_str(), r.slice)))
        .collect();
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    let rank_of = |case: &str, slice: Option<usize>| rows.iter().position(|r| r.1 == case && r.2 == slice);
    let mut layers = vec![Series {
        label: "pool".into(),
        colour: super::canvas::GREY,
        points: rows.iter().enumerate().map(|(n, r)| (n as f64, r.0)).collect(),
        markers: Some(1.5),
    }];
    for reason in [Reason::Far, Reason::Near] {
        let points = sel
            .items
            .iter()
            .filter(|i| i.reason == reason)
            .filter_map(|i| rank_of(&i.case, i.slice).map(|n| (n as f64, rows[n].0)))
            .collect();
        layers.push(Series {
            label: format!("{} picks", reason_name(reason)),
            colour: reason_colour(reason),
            points,
            markers: Some(3.5),
        });
    }
    Ok(Some(Figure {
        name: format!("stdr-distances-{}", d.id),
        caption: format!(
            "STDR distance (to the nearest source reference point) of every pool slice of domain {}, sorted; \
             the far and near picks marked.",
            d.id
        ),
        canvas: chart(&format!("STDR distances, {}", d.id), "pool rank", "distance", &layers),
        points: None,
        density: 2,
    }))
}

/// The loss and validation DSC of the source training and of each adaptation.
pub fn curves(inputs: &Inputs) -> Result<Section, Error> {
    let mut figures = Vec::new();
    let source = read_json::<serde_json::Value>(&inputs.dir.join("source/training-log.json"))?;
    if let Some(log) = &source {
        let (loss, val) = curve_points(log);
        figures.push(Figure {
            name: "curve-source".into(),
            caption: "Source training: the loss of each step and the median validation DSC of each validation.".into(),
            canvas: chart(
                "Source training",
                "iteration",
                "loss / DSC",
                &[
                    Series {
                        label: "loss".into(),
                        colour: colour(4),
                        points: loss,
                        markers: None,
                    },
                    Series {
                        label: "validation median DSC".into(),
                        colour: colour(5),
                        points: val,
                        markers: Some(3.0),
                    },
                ],
            ),
            points: None,
            density: 2,
        });
    }
    for d in &inputs.domains {
        let mut series = Vec::new();
        for (n, m) in inputs.methods.iter().enumerate() {
            let Some(log) = read_json::<serde_json::Value>(&inputs.run_dir(&d.id, m).join("training-log.json"))? else {
                continue;
            };
            let (loss, _) = curve_points(&log);
            if !loss.is_empty() {
                series.push(Series {
                    label: m.clone(),
                    colour: colour(n),
                    points: loss,
                    markers: None,
                });
            }
        }
        if !series.is_empty() {
            figures.push(Figure {
                name: format!("curve-adaptation-{}", d.id),
                caption: format!("Adaptation (and supervised) training loss per step, domain {}.", d.id),
                canvas: chart(&format!("Adaptation loss, {}", d.id), "iteration", "loss", &series),
                points: None,
                density: 2,
            });
        }
    }
    Ok(Section {
        id: "curves",
        title: "Training and adaptation curves".into(),
        html: String::new(),
        figures,
    })
}

/// Points of a curve: (iteration, value).
type Curve = Vec<(f64, f64)>;

/// (iteration, loss) of every step and (iteration, median DSC) of every validation.
fn curve_points(log: &serde_json::Value) -> (Curve, Curve) {
    let events = log["events"].as_array().cloned().unwrap_or_default();
    let pick = |kind: &str, key: &str| -> Curve {
        events
            .iter()
            .filter(|e| e["event"] == kind)
            .filter_map(|e| Some((e["iteration"].as_f64()?, e[key].as_f64()?)))
            .collect()
    };
    (pick("step", "loss"), pick("validation", "median_dsc"))
}

/// The settings that produced the results, the engine and the date.
pub fn settings(inputs: &Inputs) -> Section {
    let text = serde_json::to_string_pretty(&inputs.experiment).unwrap_or_default();
    Section {
        id: "settings",
        title: "Settings".into(),
        html: format!(
            "<p>Report by delinea {} on {} of <code>{}</code>.</p><pre>{}</pre>",
            crate::VERSION,
            crate::fsutil::utc_now(),
            escape(&inputs.dir.display().to_string()),
            escape(&text)
        ),
        figures: vec![],
    }
}
