//! What scripts call, registered once per engine as one module of plugin functions, so that
//! every function carries its parameter names and doc comment (`scripts/README.md` is checked
//! against [`signatures`]).
//!
//! - [`vector`]: `Vector`, numeric columns, and delinea's error-propagating `sort`/`argsort`;
//! - [`pool`]: `Pool`, the candidates of a query policy as columns;
//! - [`volume`]: `Volume` and `Labels`, read and written inside the allowed folders;
//! - [`model`]: `Model` and the protocol's steps (train, references, pools, selections,
//!   adaptation, evaluation), on the command's device;
//! - [`stats`]: metrics of two masks, median, IQR, Wilcoxon, Holm, random numbers, logging.

pub mod model;
pub mod pool;
pub mod stats;
pub mod vector;
pub mod volume;

use rhai::plugin::*;
use rhai::{Engine, Module};

/// delinea's functions and types as one module.
pub fn module() -> Module {
    let mut module = Module::new();
    combine_with_exported_module!(&mut module, "vector", vector::vector_api);
    combine_with_exported_module!(&mut module, "pool", pool::pool_api);
    combine_with_exported_module!(&mut module, "volume", volume::volume_api);
    combine_with_exported_module!(&mut module, "model", model::model_api);
    combine_with_exported_module!(&mut module, "stats", stats::stats_api);
    module
}

/// Registers [`module`] into `engine`, with the display names of its types.
pub fn register(engine: &mut Engine) {
    engine.register_type_with_name::<vector::Vector>("Vector");
    engine.register_type_with_name::<pool::Pool>("Pool");
    engine.register_type_with_name::<volume::Volume>("Volume");
    engine.register_type_with_name::<volume::Labels>("Labels");
    engine.register_type_with_name::<model::Model>("Model");
    engine.register_global_module(module().into());
}

/// Every registered function's signature (`name(param: type, …) -> type`, the types as a
/// script sees them) with its doc comment, sorted: what `scripts/README.md` documents.
pub fn signatures() -> Vec<(String, String)> {
    let mut engine = Engine::new_raw();
    register(&mut engine);
    let json = engine.gen_fn_metadata_to_json(false).unwrap_or_default();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
    let mut out: Vec<(String, String)> = (value["functions"].as_array().into_iter().flatten())
        .filter_map(|f| {
            let name = match f["name"].as_str()? {
                "index$get$" => "[]",
                other => other,
            };
            let params: Vec<String> = (f["params"].as_array().into_iter().flatten())
                .map(|p| {
                    let n = p["name"].as_str().unwrap_or("_");
                    format!("{n}: {}", script_type(p["type"].as_str().unwrap_or("?")))
                })
                .collect();
            let ret = script_type(f["returnType"].as_str().unwrap_or("()"));
            let signature = match ret.as_str() {
                "()" => format!("{name}({})", params.join(", ")),
                r => format!("{name}({}) -> {r}", params.join(", ")),
            };
            let doc = (f["docComments"].as_array().into_iter().flatten())
                .filter_map(|c| c.as_str())
                .flat_map(|c| c.lines())
                .map(|l| l.trim().trim_start_matches("///").trim())
                .collect::<Vec<_>>()
                .join(" ");
            Some((signature, doc))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A Rust type as a script sees it: `Result<Vector, Box<EvalAltResult>>` → `Vector`,
/// `&mut Pool` → `Pool`, `i64` → `int`, `f64` → `float`, `&str` → `string`, `Array` →
/// `array`, `Map` → `map`, `Dynamic` → `any`, `FnPtr` → `Fn`.
fn script_type(t: &str) -> String {
    let mut t = t.trim();
    for wrapper in ["Result<", "Fallible<"] {
        if let Some(inner) = t.strip_prefix(wrapper) {
            t = inner.strip_suffix('>').unwrap_or(inner);
            t = t.split_once(", Box<").map_or(t, |(ok, _)| ok);
        }
    }
    let t = t.trim_start_matches("&mut ").trim_start_matches('&');
    let last = t.rsplit("::").next().unwrap_or(t);
    match last {
        "i64" | "INT" => "int",
        "f64" | "FLOAT" => "float",
        "str" | "String" | "ImmutableString" => "string",
        "Array" => "array",
        "Map" => "map",
        "Dynamic" => "any",
        "FnPtr" => "Fn",
        "bool" => "bool",
        "()" => "()",
        other => other,
    }
    .to_string()
}
