//! The segmentation loss of METHOD.md step 3: `0.5 * (cross-entropy + soft Dice on the tumour
//! channel)`, with Dice `1 - (2 sum(p*y) + s) / (sum(p^2) + sum(y^2) + s)`, `s = 1e-5`, summed
//! over the whole batch as in the reference code's `DiceLoss`; and Tent's label-free
//! objective, the normalised prediction entropy ([`normalised_entropy`], METHOD.md "Baselines").

use burn::config::Config;
use burn::tensor::activation::{log_softmax, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use super::Error;

/// Weights and constants of [`SegLoss`]; defaults are the paper's.
#[derive(Config, Debug, PartialEq)]
pub struct SegLossConfig {
    /// Class whose probability map enters the Dice term (tumour: 1).
    #[config(default = 1)]
    pub dice_class: usize,
    /// Weight of the cross-entropy term.
    #[config(default = 0.5)]
    pub ce_weight: f64,
    /// Weight of the Dice term.
    #[config(default = 0.5)]
    pub dice_weight: f64,
    /// Smoothing constant added to the Dice numerator and denominator.
    #[config(default = 1e-5)]
    pub smooth: f64,
}

impl SegLossConfig {
    /// Builds the loss for a network with `classes` outputs, checking that `dice_class` is one
    /// of them and that weights are finite and non-negative.
    pub fn init(&self, classes: usize) -> Result<SegLoss, Error> {
        if self.dice_class >= classes {
            return Err(Error::InvalidConfig {
                field: "dice_class",
                reason: format!("is {}, but the network has {classes} classes", self.dice_class),
            });
        }
        let ok = |w: f64| w.is_finite() && w >= 0.0;
        if !(ok(self.ce_weight) && ok(self.dice_weight) && ok(self.smooth)) {
            return Err(Error::InvalidConfig {
                field: "ce_weight/dice_weight/smooth",
                reason: format!(
                    "must be finite and >= 0, found {}, {}, {}",
                    self.ce_weight, self.dice_weight, self.smooth
                ),
            });
        }
        Ok(SegLoss {
            classes,
            config: self.clone(),
        })
    }
}

/// The loss terms of one batch, each a one-element tensor (differentiable on an autodiff
/// backend).
#[derive(Debug, Clone)]
pub struct LossTerms<B: Backend> {
    /// `ce_weight * ce + dice_weight * dice`: what to call `backward` on.
    pub total: Tensor<B, 1>,
    /// Mean pixel cross-entropy.
    pub ce: Tensor<B, 1>,
    /// Soft Dice loss of the `dice_class` channel over the whole batch.
    pub dice: Tensor<B, 1>,
}

/// `ce_weight * CE + dice_weight * soft Dice` (METHOD.md step 3), built by
/// [`SegLossConfig::init`].
#[derive(Debug, Clone)]
pub struct SegLoss {
    classes: usize,
    config: SegLossConfig,
}

impl SegLoss {
    /// The loss and its terms.
    ///
    /// # Shapes
    /// - `logits`: `[batch, classes, H, W]` (network output, before softmax)
    /// - `target`: `[batch, H, W]`, class indices in `0..classes`
    ///
    /// # Panics
    /// When the shapes disagree or `logits` does not have `classes` channels.
    pub fn forward<B: Backend>(&self, logits: Tensor<B, 4>, target: Tensor<B, 3, Int>) -> LossTerms<B> {
        let [b, c, h, w] = logits.dims();
        assert_eq!(
            c, self.classes,
            "logits have {c} channels, the loss was built for {}",
            self.classes
        );
        assert_eq!(
            target.dims(),
            [b, h, w],
            "target shape must be [batch, H, W] of the logits"
        );
        // One-hot target, class by class.
        let onehot = Tensor::cat(
            (0..c)
                .map(|k| target.clone().equal_elem(k as i64).float().unsqueeze_dim::<4>(1))
                .collect(),
            1,
        ); // [B, C, H, W]
        let ce = log_softmax(logits.clone(), 1) // [B, C, H, W]
            .mul(onehot.clone()) // [B, C, H, W]
            .sum_dim(1) // [B, 1, H, W]
            .mean() // [1]
            .neg(); // [1]
        let k = self.config.dice_class;
        let p = softmax(logits, 1).narrow(1, k, 1); // [B, 1, H, W]
        let y = onehot.narrow(1, k, 1); // [B, 1, H, W]
        let s = self.config.smooth;
        let intersect = p.clone().mul(y.clone()).sum(); // [1]
        let denom = p.square().sum().add(y.square().sum()).add_scalar(s); // [1]
        let dice = intersect.mul_scalar(2.0).add_scalar(s).div(denom).neg().add_scalar(1.0); // [1]
        let total = ce
            .clone()
            .mul_scalar(self.config.ce_weight)
            .add(dice.clone().mul_scalar(self.config.dice_weight));
        LossTerms { total, ce, dice }
    }
}

/// Mean over pixels of the Shannon entropy of the softmax, divided by `ln(classes)` so that it
/// lies in `[0, 1]` (1: uniform prediction, 0: one-hot). Tent's loss (Wang et al., ICLR 2021),
/// with the normalisation of METHOD.md "Baselines"; it reads no labels.
///
/// # Shapes
/// - `logits`: `[batch, classes, H, W]` (network output, before softmax), `classes >= 2`
/// - output: `[1]`
pub fn normalised_entropy<B: Backend>(logits: Tensor<B, 4>) -> Tensor<B, 1> {
    let classes = logits.dims()[1].max(2);
    let log_p = log_softmax(logits, 1); // [B, C, H, W], stable where p underflows
    let p = log_p.clone().exp(); // [B, C, H, W]
    p.mul(log_p) // [B, C, H, W]
        .sum_dim(1) // [B, 1, H, W]: -H per pixel
        .mean() // [1]
        .neg() // [1]
        .div_scalar((classes as f64).ln())
}

#[cfg(test)]
mod tests {
    use burn::backend::Flex;
    use burn::tensor::TensorData;

    use super::*;

    type B = Flex;

    fn scalar(t: Tensor<B, 1>) -> f64 {
        f64::from(t.into_scalar())
    }

    /// Two pixels, logits (0, 0) -> p = (1/2, 1/2) with target 1, and (0, ln 3) -> p = (1/4, 3/4)
    /// with target 0. CE = (ln 2 + ln 4) / 2 = 1.5 ln 2. Dice on class 1: p = (1/2, 3/4),
    /// y = (1, 0): sum p*y = 1/2, sum p^2 = 1/4 + 9/16 = 13/16, sum y^2 = 1, so
    /// Dice = 1 - (1 + 1e-5) / (29/16 + 1e-5).
    #[test]
    fn matches_hand_computed_values() {
        let device = Default::default();
        let logits = Tensor::<B, 4>::from_data(
            TensorData::new(vec![0.0f32, 0.0, 0.0, 3f32.ln()], [1, 2, 1, 2]),
            &device,
        );
        let target = Tensor::<B, 3, Int>::from_data(TensorData::new(vec![1i32, 0], [1, 1, 2]), &device);
        let terms = SegLossConfig::new().init(2).unwrap().forward(logits, target);
        let ce = 1.5 * 2f64.ln();
        let dice = 1.0 - (1.0 + 1e-5) / (29.0 / 16.0 + 1e-5);
        assert!((scalar(terms.ce) - ce).abs() < 1e-5);
        assert!((scalar(terms.dice) - dice).abs() < 1e-5);
        assert!((scalar(terms.total) - 0.5 * (ce + dice)).abs() < 1e-5);
    }

    /// A confident, correct prediction has a loss near 0.
    #[test]
    fn perfect_prediction_has_near_zero_loss() {
        let device = Default::default();
        // Pixel 1 class 1, pixel 2 class 0; logits +-20.
        let logits = Tensor::<B, 4>::from_data(
            TensorData::new(vec![-20.0f32, 20.0, 20.0, -20.0], [1, 2, 1, 2]),
            &device,
        );
        let target = Tensor::<B, 3, Int>::from_data(TensorData::new(vec![1i32, 0], [1, 1, 2]), &device);
        let loss = SegLossConfig::new().init(2).unwrap().forward(logits, target);
        assert!(scalar(loss.total) < 1e-6);
    }

    /// A uniform pixel has normalised entropy 1, a confident one about 0, and the mean is taken
    /// over pixels: (1 + 0) / 2. Three classes normalise by ln 3.
    #[test]
    fn normalised_entropy_spans_zero_to_one() {
        let device = Default::default();
        let logits = Tensor::<B, 4>::from_data(TensorData::new(vec![0.0f32, 30.0, 0.0, -30.0], [1, 2, 1, 2]), &device);
        assert!((scalar(normalised_entropy(logits)) - 0.5).abs() < 1e-5);
        let uniform = Tensor::<B, 4>::zeros([2, 3, 4, 4], &device);
        assert!((scalar(normalised_entropy(uniform)) - 1.0).abs() < 1e-5);
        // p = (1/4, 3/4): H = -(1/4 ln 1/4 + 3/4 ln 3/4) nats, over ln 2.
        let logits = Tensor::<B, 4>::from_data(TensorData::new(vec![0.0f32, 3f32.ln()], [1, 2, 1, 1]), &device);
        let h = -(0.25 * 0.25f64.ln() + 0.75 * 0.75f64.ln()) / 2f64.ln();
        assert!((scalar(normalised_entropy(logits)) - h).abs() < 1e-5);
    }

    #[test]
    fn dice_class_must_exist() {
        assert!(matches!(
            SegLossConfig::new().with_dice_class(2).init(2),
            Err(Error::InvalidConfig {
                field: "dice_class",
                ..
            })
        ));
    }
}
