//! `delinea report RESULTS_DIR`: one self-contained HTML page of an experiment (pictures
//! embedded as PNG, no script, no network), and the same pictures as PNG files in `report/`
//! beside it.
//!
//! Sections: the results table (`table.md`, failures marked); box plots of DSC and HD95 per
//! domain, every case a point (failures as × in the "inf" band, outliers with their case id);
//! for each domain the best, median and worst test case of the best method (highest median
//! DSC, the supervised bound aside) on the axial slice with the most tumour, the ground truth
//! and every method outlined; what each query picked on its pool (a case × slice grid with
//! tumour slices shaded) and STDR's sorted distances with its far and near picks; training and
//! adaptation curves; the settings, the engine version and the date.

mod canvas;
mod charts;
mod html;
mod overlay;
mod sections;

use std::path::{Path, PathBuf};

pub use canvas::decode_png;

use crate::dataset::Manifest;
use crate::experiment::Domain;

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A results file is missing or not what `delinea experiment` writes.
    #[error("{path}: {reason}")]
    Input {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The report could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
}

fn input(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::Input {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// What was written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// The HTML page.
    pub html: PathBuf,
    /// The PNG pictures beside it.
    pub pictures: Vec<PathBuf>,
    /// The section ids, in order.
    pub sections: Vec<String>,
}

/// One test case's row of `cases.csv`.
#[derive(Debug, Clone)]
pub struct CaseRow {
    pub domain: String,
    pub method: String,
    pub case: String,
    pub dsc: Option<f64>,
    pub hd95: Option<f64>,
    pub prediction: Option<PathBuf>,
}

/// What an experiment's results folder holds, read once.
pub struct Inputs {
    /// The results folder.
    pub dir: PathBuf,
    /// `experiment.json`.
    pub experiment: serde_json::Value,
    /// The cohort.
    pub manifest: Manifest,
    /// The target domains, in order.
    pub domains: Vec<Domain>,
    /// The methods, in order.
    pub methods: Vec<String>,
    /// `cases.csv`.
    pub cases: Vec<CaseRow>,
    /// `table.md`.
    pub table: String,
    /// Each replicate's median DSC per domain and method (`results.json`'s `replicates`), when
    /// the experiment ran several: `(domain, method, medians)`.
    pub replicate_medians: Vec<(String, String, Vec<Option<f64>>)>,
}

impl Inputs {
    /// The inputs of `delinea evaluate`: its per-case CSV `cases` (one "method", the
    /// predictions folder `predictions`), per-centre summary CSV `summary`, over `manifest`'s
    /// centres judged by `rater`.
    pub fn evaluation(
        cases: &Path,
        summary: &Path,
        manifest: &Path,
        predictions: &Path,
        rater: Option<&str>,
    ) -> Result<Inputs, Error> {
        let method = predictions
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "predictions".into());
        let loaded = Manifest::load(manifest).map_err(|e| input(manifest, e))?;
        let table = crate::metrics::read_results(cases).map_err(|e| input(cases, e))?;
        let centre = table.column("centre").map_err(|e| input(cases, e))?;
        let mut rows = read_cases_with(cases, &table, None)?;
        for (row, fields) in rows.iter_mut().zip(&table.rows) {
            (row.domain, row.method) = (fields[centre].clone(), method.clone());
        }
        let mut centres: Vec<String> = Vec::new();
        for r in &rows {
            if !centres.contains(&r.domain) {
                centres.push(r.domain.clone());
            }
        }
        let domains = centres
            .into_iter()
            .map(|c| Domain {
                id: c.clone(),
                centre: c,
                rater: rater.map(String::from),
            })
            .collect();
        let summary_text = std::fs::read_to_string(summary).map_err(|e| input(summary, e))?;
        Ok(Inputs {
            dir: cases.parent().unwrap_or(Path::new(".")).to_path_buf(),
            experiment: serde_json::json!({
                "command": "delinea evaluate", "cases": cases, "manifest": manifest,
                "predictions": predictions, "rater": rater,
            }),
            manifest: loaded,
            domains,
            methods: vec![method],
            cases: rows,
            table: csv_as_markdown(&summary_text),
            replicate_medians: vec![],
        })
    }

    /// Reads the results folder `dir`.
    pub fn read(dir: &Path) -> Result<Inputs, Error> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|e| {
                input(
                    &path,
                    format!("{e} (is {} the --out folder of delinea experiment?)", dir.display()),
                )
            })
        };
        let path = dir.join("experiment.json");
        let experiment: serde_json::Value =
            serde_json::from_str(&read("experiment.json")?).map_err(|e| input(&path, e))?;
        let field = |key: &str| {
            experiment
                .get(key)
                .cloned()
                .ok_or_else(|| input(&path, format!("no `{key}`")))
        };
        let domains: Vec<Domain> = serde_json::from_value(field("domains")?).map_err(|e| input(&path, e))?;
        let methods: Vec<String> = serde_json::from_value(field("methods")?).map_err(|e| input(&path, e))?;
        let manifest_field: PathBuf = serde_json::from_value(field("manifest")?).map_err(|e| input(&path, e))?;
        let manifest = Manifest::load(&locate(dir, &manifest_field).ok_or_else(|| {
            input(
                &path,
                format!(
                    "its manifest {} is neither there nor beside the results",
                    manifest_field.display()
                ),
            )
        })?)
        .map_err(|e| input(&path, e))?;
        let cases = read_cases(&dir.join("cases.csv"))?;
        let results = dir.join("results.json");
        let replicate_medians = match std::fs::read_to_string(&results) {
            Ok(text) => replicate_medians(&serde_json::from_str(&text).map_err(|e| input(&results, e))?),
            Err(_) => vec![],
        };
        Ok(Inputs {
            dir: dir.to_path_buf(),
            table: read("table.md")?,
            replicate_medians,
            experiment,
            manifest,
            domains,
            methods,
            cases,
        })
    }

    /// The rows of `domain` and `method`.
    pub fn rows<'a>(&'a self, domain: &'a str, method: &'a str) -> impl Iterator<Item = &'a CaseRow> + 'a {
        self.cases
            .iter()
            .filter(move |r| r.domain == domain && r.method == method)
    }

    /// A run's folder.
    pub fn run_dir(&self, domain: &str, method: &str) -> PathBuf {
        self.dir.join("runs").join(domain).join(method)
    }
}

/// `path` as recorded (absolute, or relative to where the experiment ran), else relative to
/// the results folder or its parent.
fn locate(dir: &Path, path: &Path) -> Option<PathBuf> {
    let candidates = [
        path.to_path_buf(),
        dir.join(path),
        dir.parent().unwrap_or(dir).join(path),
    ];
    candidates.into_iter().find(|p| p.is_file())
}

fn read_cases(path: &Path) -> Result<Vec<CaseRow>, Error> {
    let table = crate::metrics::read_results(path).map_err(|e| input(path, e))?;
    let names = (
        table.column("domain").map_err(|e| input(path, e))?,
        table.column("method").map_err(|e| input(path, e))?,
    );
    read_cases_with(path, &table, Some(names))
}

/// The rows of `table` (from `path`); `domain_method`: the columns naming them, if any.
fn read_cases_with(
    path: &Path,
    table: &crate::metrics::ResultsTable,
    domain_method: Option<(usize, usize)>,
) -> Result<Vec<CaseRow>, Error> {
    let col = |name: &str| table.column(name).map_err(|e| input(path, e));
    let (case, dsc, hd95, prediction) = (col("case")?, col("dsc")?, col("hd95")?, col("prediction")?);
    let base = path.parent().unwrap_or(path);
    (0..table.rows.len())
        .map(|r| {
            let value = |c| table.value(r, c).map_err(|e| input(path, e));
            let field = |c: Option<usize>| c.map(|c| table.rows[r][c].clone()).unwrap_or_default();
            let p = &table.rows[r][prediction];
            Ok(CaseRow {
                domain: field(domain_method.map(|d| d.0)),
                method: field(domain_method.map(|d| d.1)),
                case: table.rows[r][case].clone(),
                dsc: value(dsc)?,
                hd95: value(hd95)?,
                prediction: (!p.is_empty()).then(|| locate(base, Path::new(p)).unwrap_or(p.into())),
            })
        })
        .collect()
}

/// A CSV of plain fields (the evaluation's summary, numbers and ids) as a Markdown pipe table.
fn csv_as_markdown(text: &str) -> String {
    let line = |cells: Vec<&str>| format!("| {} |", cells.join(" | "));
    let mut rows = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').collect::<Vec<_>>());
    let Some(header) = rows.next() else {
        return String::new();
    };
    let mut out = vec![format!("|{}", "---|".repeat(header.len()))];
    out.insert(0, line(header));
    out.extend(rows.map(line));
    out.join("\n")
}

/// A picture of the report.
pub struct Figure {
    /// Its file name without `.png`.
    pub name: String,
    /// Its caption (HTML-escaped when written).
    pub caption: String,
    /// The picture.
    pub canvas: canvas::Canvas,
    /// For box plots: the points drawn (the page records them).
    pub points: Option<usize>,
    /// Pixels drawn per pixel shown: 2 for the charts (drawn at twice the page's size, for
    /// print), 1 for slices.
    pub density: usize,
}

/// A section of the page: a heading, paragraphs or tables (HTML), figures.
pub struct Section {
    pub id: &'static str,
    pub title: String,
    pub html: String,
    pub figures: Vec<Figure>,
}

/// Writes the report of the results folder `dir` to `out` (an `.html` file; the PNG files
/// go to the folder of its name without `.html`: `report/` beside `report.html`).
pub fn write_report(dir: &Path, out: &Path) -> Result<Report, Error> {
    render(&Inputs::read(dir)?, out)
}

/// Writes the report of `inputs` to `out` (see [`write_report`]).
pub fn render(inputs: &Inputs, out: &Path) -> Result<Report, Error> {
    let sections = vec![
        sections::results(inputs),
        sections::box_plots(inputs),
        sections::cases(inputs)?,
        sections::queries(inputs)?,
        sections::curves(inputs)?,
        sections::settings(inputs),
    ];
    let folder = pictures_folder(out);
    std::fs::create_dir_all(&folder).map_err(|source| Error::Io {
        path: folder.clone(),
        source,
    })?;
    let mut pictures = Vec::new();
    for f in sections.iter().flat_map(|s| &s.figures) {
        let path = folder.join(format!("{}.png", file_stem(&f.name)));
        crate::fsutil::write_bytes_atomic(&path, &f.canvas.png()).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        pictures.push(path);
    }
    let folder_name = folder
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let page = html::page(inputs, &sections, &folder_name);
    crate::fsutil::write_bytes_atomic(out, page.as_bytes()).map_err(|source| Error::Io {
        path: out.to_path_buf(),
        source,
    })?;
    Ok(Report {
        html: out.to_path_buf(),
        pictures,
        sections: sections.iter().map(|s| s.id.to_string()).collect(),
    })
}

/// `results.json`'s `replicates.domains[].methods[].dsc.values`, as `(domain, method,
/// medians)` (`"inf"` and `null` as `None`); empty without replicates.
fn replicate_medians(results: &serde_json::Value) -> Vec<(String, String, Vec<Option<f64>>)> {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let domains = results["replicates"]["domains"].as_array().cloned().unwrap_or_default();
    let mut out = Vec::new();
    for d in &domains {
        for m in d["methods"].as_array().into_iter().flatten() {
            let values = m["dsc"]["values"].as_array().into_iter().flatten();
            out.push((
                text(&d["domain"]),
                text(&m["method"]),
                values.map(|v| v.as_f64()).collect(),
            ));
        }
    }
    out
}

/// A figure's name as a file name: what is not a letter, digit, `.`, `-` or `_` becomes `_`.
pub(crate) fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `report.html` → `report/`.
pub fn pictures_folder(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".html").unwrap_or(&name);
    out.with_file_name(if stem == name {
        format!("{stem}-pictures")
    } else {
        stem.to_string()
    })
}
