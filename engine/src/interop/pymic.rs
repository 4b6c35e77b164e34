//! The reference network's tensor names (PyMIC/SSL4MIS `UNet`, the paper's
//! `Code_OA/networks/unet.py`) against delinea's [`UNet2d`](crate::model::UNet2d), and the shape
//! each tensor has for a given architecture.
//!
//! The reference network has five levels (its encoder asserts it). A block's
//! `conv_conv` is `Sequential(Conv2d, BatchNorm2d, LeakyReLU, Dropout, Conv2d, BatchNorm2d,
//! LeakyReLU)`, so its tensors sit at indices 0, 1, 4 and 5. delinea's decoder counts from the
//! bottleneck as the reference's does: `up1` (256 → 128 at the paper's widths) is delinea's
//! `decoder.0`.

use crate::train::Architecture;

/// Levels of the reference network (`assert len(feature_chns) == 5`).
pub const LEVELS: usize = 5;

/// The most levels an import looks for (a 2^20-fold downsampling is far past any slice).
pub const MAX_LEVELS: usize = 20;

/// The name the mapping is recorded under in a model card.
pub const MAPPING: &str = "pymic-unet (PyMIC/SSL4MIS UNet, the SFADA-GTV-Seg reference network)";

/// The key of the first convolution: its shape gives the input channels and the top width.
pub const FIRST_CONV: &str = "encoder.in_conv.conv_conv.0.weight";
/// The key of the head: its shape gives the classes.
pub const HEAD: &str = "decoder.out_conv.weight";

/// One tensor of the network under both names, with its shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The reference network's state_dict key.
    pub pymic: String,
    /// delinea's module path (burn-store's `full_path`).
    pub burn: String,
    /// The shape the architecture gives it.
    pub shape: Vec<usize>,
}

/// Within a block: (reference suffix, delinea suffix, which shape).
const BLOCK: [(&str, &str, Part); 12] = [
    ("0.weight", "conv1.weight", Part::Conv1),
    ("0.bias", "conv1.bias", Part::Channels),
    ("1.weight", "bn1.gamma", Part::Channels),
    ("1.bias", "bn1.beta", Part::Channels),
    ("1.running_mean", "bn1.running_mean", Part::Channels),
    ("1.running_var", "bn1.running_var", Part::Channels),
    ("4.weight", "conv2.weight", Part::Conv2),
    ("4.bias", "conv2.bias", Part::Channels),
    ("5.weight", "bn2.gamma", Part::Channels),
    ("5.bias", "bn2.beta", Part::Channels),
    ("5.running_mean", "bn2.running_mean", Part::Channels),
    ("5.running_var", "bn2.running_var", Part::Channels),
];

#[derive(Clone, Copy)]
enum Part {
    Conv1,
    Conv2,
    Channels,
}

/// The reference prefix of encoder level `l` (0-based) and of decoder step `i` (1-based, `up1`
/// is the bottleneck's).
fn encoder_prefix(l: usize) -> String {
    match l {
        0 => "encoder.in_conv.conv_conv".into(),
        l => format!("encoder.down{l}.maxpool_conv.1.conv_conv"),
    }
}

fn decoder_prefix(i: usize) -> String {
    format!("decoder.up{i}.conv.conv_conv")
}

/// Every tensor of a five-level network `arch` (in_channels, features, classes), in the
/// reference network's order: 118 of them (`num_batches_tracked` aside).
pub fn entries(arch: &Architecture) -> Vec<Entry> {
    let f = &arch.features;
    let mut out = Vec::with_capacity(118);
    let mut block = |pymic: String, burn: String, i: usize, o: usize| {
        for (ps, bs, part) in BLOCK {
            let shape = match part {
                Part::Conv1 => vec![o, i, 3, 3],
                Part::Conv2 => vec![o, o, 3, 3],
                Part::Channels => vec![o],
            };
            out.push(Entry {
                pymic: format!("{pymic}.{ps}"),
                burn: format!("{burn}.{bs}"),
                shape,
            });
        }
    };
    let mut prev = arch.in_channels;
    for (l, &c) in f.iter().enumerate() {
        block(encoder_prefix(l), format!("encoder.{l}"), prev, c);
        prev = c;
    }
    for i in 1..f.len() {
        let level = f.len() - 1 - i; // up1 ends at the level above the bottleneck
        block(
            decoder_prefix(i),
            format!("decoder.{}.block", i - 1),
            2 * f[level],
            f[level],
        );
    }
    for i in 1..f.len() {
        let level = f.len() - 1 - i;
        for (name, shape) in [("weight", vec![f[level + 1], f[level], 2, 2]), ("bias", vec![f[level]])] {
            out.push(Entry {
                pymic: format!("decoder.up{i}.up.{name}"),
                burn: format!("decoder.{}.up.{name}", i - 1),
                shape,
            });
        }
    }
    for (name, shape) in [("weight", vec![arch.classes, f[0], 3, 3]), ("bias", vec![arch.classes])] {
        out.push(Entry {
            pymic: format!("decoder.out_conv.{name}"),
            burn: format!("head.{name}"),
            shape,
        });
    }
    out
}

/// The `num_batches_tracked` keys of the batch norms among `entries` (PyTorch's counters,
/// which delinea does not keep: ignored on import, written as 0 on export).
pub fn batch_norm_counters(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .filter_map(|e| e.pymic.strip_suffix("running_mean"))
        .map(|p| format!("{p}num_batches_tracked"))
        .collect()
}

/// The architecture whose shapes these tensors have, read off the first convolution of each
/// level (`in_conv`, then `down1`, `down2`, … as far as they go: five in the reference) and the
/// head: `(in_channels, features, classes)`; `None` for a key that is missing or not a 4-d
/// convolution weight (the caller reports every key against the paper's architecture then).
pub fn infer(shape_of: impl Fn(&str) -> Option<Vec<usize>>) -> Option<(usize, Vec<usize>, usize)> {
    let conv = |key: &str| shape_of(key).filter(|s| s.len() == 4 && s[0] > 0 && s[1] > 0);
    let first = conv(FIRST_CONV)?;
    let mut features = vec![first[0]];
    while features.len() < MAX_LEVELS {
        match conv(&format!("{}.0.weight", encoder_prefix(features.len()))) {
            Some(s) => features.push(s[0]),
            None => break,
        }
    }
    let classes = conv(HEAD)?[0];
    Some((first[1], features, classes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The paper's network: 118 mapped tensors plus 18 counters make the reference's 136, with
    /// as many parameters as delinea counts (running statistics aside).
    #[test]
    fn the_papers_network_has_the_references_136_tensors() {
        let arch = Architecture::default();
        let e = entries(&arch);
        assert_eq!(e.len() + batch_norm_counters(&e).len(), 136);
        let params: usize = e
            .iter()
            .filter(|e| !e.burn.contains("running_"))
            .map(|e| e.shape.iter().product::<usize>())
            .sum();
        assert_eq!(params, arch.to_config().trainable_params());
        assert_eq!(params, 1_944_034); // the reference's count (MODELS-AND-KERNELS.md)
        let up1 = e.iter().find(|e| e.pymic == "decoder.up1.up.weight").unwrap();
        assert_eq!(
            (up1.burn.as_str(), &up1.shape),
            ("decoder.0.up.weight", &vec![256, 128, 2, 2])
        );
        let up4 = e
            .iter()
            .find(|e| e.pymic == "decoder.up4.conv.conv_conv.0.weight")
            .unwrap();
        assert_eq!(
            (up4.burn.as_str(), &up4.shape),
            ("decoder.3.block.conv1.weight", &vec![16, 32, 3, 3])
        );
        let names: std::collections::BTreeSet<_> = e.iter().map(|e| &e.burn).collect();
        assert_eq!(names.len(), e.len(), "each delinea path once");
    }
}
