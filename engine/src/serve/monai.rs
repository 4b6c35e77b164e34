//! MONAI Label's JSON, made from the watcher's board: `/info/`, the datastore listing and
//! statistics, and train tasks (see ../shared/MONAI-LABEL.md for what Slicer needs of each).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::watch::{Board, BoardImage, Ended, Event, Progress, LABEL_NAME};

/// The one model and trainer this server offers.
pub const MODEL: &str = "delinea";

/// The tag of a case's latest label; `final@<rater>` is each rater's.
pub const FINAL: &str = "final";

/// `GET /info/` (no top-level `config`: Slicer would ask for a server upgrade).
pub fn info(b: &Board) -> Value {
    let strategies: BTreeMap<&str, Value> = b
        .strategies
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let d = if i == 0 {
                "the job's query strategy"
            } else {
                "a builtin query strategy"
            };
            (
                s.as_str(),
                json!({"description": format!("{s}: {d}, over the unlabelled scans")}),
            )
        })
        .collect();
    let model = format!(
        "NPC GTV segmentation, generation {} ({}), adapted by delinea to this department's labels",
        b.generation,
        b.model.display()
    );
    json!({
        "name": if b.name.is_empty() { "delinea" } else { b.name.as_str() },
        "description": "delinea: source-free active domain adaptation of NPC GTV delineation",
        "version": env!("CARGO_PKG_VERSION"),
        "labels": [LABEL_NAME],
        "models": {MODEL: {"type": "segmentation", "labels": {LABEL_NAME: 1}, "dimension": 3,
                           "description": model, "config": {}}},
        "trainers": {MODEL: {"description": format!("adapt with {} to the labels submitted", b.adaptation),
                             "config": {}}},
        "strategies": strategies,
        "scoring": {},
        "train_stats": {MODEL: train_stats(b)},
        "datastore": stats(b),
    })
}

fn train_stats(b: &Board) -> Value {
    let labels: usize = b.images.values().filter(|i| i.latest.is_some()).count();
    json!({"generation": b.generation, "labelled_images": labels,
           "last": b.last_training.as_ref().map(|e| e.time.clone())})
}

/// The datastore's statistics (`GET /datastore/`).
pub fn stats(b: &Board) -> Value {
    let mut tags: BTreeMap<String, usize> = BTreeMap::new();
    for image in b.images.values() {
        for tag in tags_of(image) {
            *tags.entry(tag).or_default() += 1;
        }
    }
    json!({
        "total": b.images.len(),
        "completed": b.images.values().filter(|i| i.latest.is_some()).count(),
        "label_tags": tags,
    })
}

/// The tags an image's labels are listed under.
fn tags_of(image: &BoardImage) -> Vec<String> {
    let latest = image.latest.iter().map(|_| FINAL.to_string());
    latest
        .chain(image.labels.keys().map(|r| format!("{FINAL}@{r}")))
        .collect()
}

/// `GET /datastore/?output=all`.
pub fn listing(b: &Board) -> Value {
    let objects: BTreeMap<&String, Value> = b
        .images
        .iter()
        .map(|(id, image)| {
            let labels: BTreeMap<String, Value> = tags_of(image)
                .into_iter()
                .map(|t| (t, json!({"ext": ".nii.gz", "info": {}})))
                .collect();
            let ext = if image.name.ends_with(".nii") {
                ".nii"
            } else {
                ".nii.gz"
            };
            let info = json!({"name": image.name, "ts": image.time});
            (id, json!({"image": {"ext": ext, "info": info}, "labels": labels}))
        })
        .collect();
    json!({"name": b.name, "description": "delinea's datastore: the job state of a drop folder",
           "objects": objects})
}

/// `GET /datastore/?output=train`: the labelled images and their latest labels.
pub fn train_list(b: &Board) -> Value {
    let rows: Vec<Value> = b
        .images
        .values()
        .filter_map(|i| Some(json!({"image": i.file, "label": i.latest.as_ref()?})))
        .collect();
    Value::Array(rows)
}

/// The adaptation under way as a MONAI Label train task.
pub fn running_task(p: &Progress) -> Value {
    let detail = match (p.iteration, p.loss) {
        (Some((i, n)), Some(l)) => format!("iteration {i}/{n}, loss {l:.4}"),
        _ => "starting".into(),
    };
    json!({
        "id": format!("gen-{:04}", p.generation), "status": "RUNNING", "start_ts": p.started,
        "request": {"model": MODEL, "strategy": p.strategy, "labels": p.labels},
        "details": [detail],
        "progress": {"iteration": p.iteration.map(|x| x.0), "iterations": p.iteration.map(|x| x.1), "loss": p.loss},
    })
}

/// How the last adaptation ended, as a train task.
pub fn ended_task(e: &Ended) -> Value {
    let status = match (e.event, e.reason.as_deref()) {
        (Event::Adapted, _) => "DONE",
        (Event::Failed, Some(r)) if r.starts_with("stopped by") => "STOPPED",
        (Event::Failed, _) => "ERROR",
        _ => "STOPPED",
    };
    let detail = match (e.event, &e.reason) {
        (Event::Adapted, _) => format!("generation {} predicts from now on", e.generation),
        (Event::AdaptStarted, _) => "interrupted: the server stopped during this adaptation".into(),
        (_, Some(r)) => r.clone(),
        (_, None) => "failed".into(),
    };
    json!({
        "id": format!("gen-{:04}", e.generation), "status": status, "end_ts": e.time,
        "request": {"model": MODEL, "labels": e.labels},
        "details": [detail],
        "result": {"generation": e.generation, "seconds": e.seconds},
    })
}
