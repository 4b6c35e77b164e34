//! The kernels on burn's CPU backend (flex): `FlexTensor`s in and out, and the autodiff nodes
//! whose backward steps call them (burn-autodiff's `Backward`, as burn's own conv2d node).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::{Autodiff, Flex};
use burn::tensor::ops::FloatTensor;
use burn::tensor::TensorData;
use burn_flex::FlexTensor;
use std::sync::Arc;

use super::conv::{self, Conv, Grads, Needs};
use super::conv_transpose::{self, Up};
use super::pool::{self, Pool};

/// A float tensor of `Autodiff<Flex>`: the flex tensor (`primitive`) and its graph node.
pub type AdTensor = FloatTensor<Autodiff<Flex>>;

/// The tensor's elements, dense (a copy only when it is a strided view). Callers check f32.
fn dense(t: FlexTensor) -> FlexTensor {
    t.to_contiguous()
}

fn data(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>()
        .expect("a dense f32 tensor (dtype checked by the caller, made dense here)")
}

fn tensor<const N: usize>(values: Vec<f32>, shape: [usize; N]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// Convolution forward on flex.
pub fn conv2d(x: FlexTensor, weight: FlexTensor, bias: Option<FlexTensor>, g: &Conv) -> FlexTensor {
    let (x, weight, bias) = (dense(x), dense(weight), bias.map(dense));
    let out = conv::forward(data(&x), data(&weight), bias.as_ref().map(data), g);
    tensor(out, [g.batch, g.c_out, g.out_h(), g.out_w()])
}

/// Transposed convolution (kernel = stride) forward on flex.
pub fn conv_transpose2d(x: FlexTensor, weight: FlexTensor, bias: Option<FlexTensor>, g: &Up) -> FlexTensor {
    let (x, weight, bias) = (dense(x), dense(weight), bias.map(dense));
    let out = conv_transpose::forward(data(&x), data(&weight), bias.as_ref().map(data), g);
    tensor(out, [g.batch, g.c_out, g.h * g.kh, g.w * g.kw])
}

/// The geometry of one of the two ops, and how each computes its gradients.
#[derive(Debug, Clone, Copy)]
pub enum Geometry {
    Conv(Conv),
    Up(Up),
}

impl Geometry {
    /// The op's forward pass on flex.
    pub fn forward(&self, x: FlexTensor, weight: FlexTensor, bias: Option<FlexTensor>) -> FlexTensor {
        match self {
            Geometry::Conv(g) => conv2d(x, weight, bias, g),
            Geometry::Up(g) => conv_transpose2d(x, weight, bias, g),
        }
    }

    fn backward(&self, x: &[f32], weight: &[f32], dy: &[f32], needs: Needs) -> Grads {
        match self {
            Geometry::Conv(g) => conv::backward(x, weight, dy, g, needs),
            Geometry::Up(g) => conv_transpose::backward(x, weight, dy, g, needs),
        }
    }

    fn input_shape(&self) -> [usize; 4] {
        match self {
            Geometry::Conv(g) => [g.batch, g.c_in, g.h, g.w],
            Geometry::Up(g) => [g.batch, g.c_in, g.h, g.w],
        }
    }

    fn weight_shape(&self) -> [usize; 4] {
        match self {
            Geometry::Conv(g) => [g.c_out, g.c_in, g.kh, g.kw],
            Geometry::Up(g) => [g.c_in, g.c_out, g.kh, g.kw],
        }
    }

    fn channels_out(&self) -> usize {
        match self {
            Geometry::Conv(g) => g.c_out,
            Geometry::Up(g) => g.c_out,
        }
    }
}

/// The autodiff node of either op with a bias: its parents are input, weight and bias.
#[derive(Debug)]
struct WeightedNode;

impl Backward<Flex, 3> for WeightedNode {
    type State = (NodeId, NodeId, Geometry);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let [id_x, id_w, id_b] = [node_x, node_w, node_b].map(|node| node.map(|n| n.id));
        let dy = dense(grads.consume::<Flex>(&ops.node));
        let (x_state, w_state, g) = ops.state;
        let x = dense(checkpointer.retrieve_node_output::<FlexTensor>(x_state));
        let w = dense(checkpointer.retrieve_node_output::<FlexTensor>(w_state));
        let needs = Needs {
            input: id_x.is_some(),
            weight: id_w.is_some(),
            bias: id_b.is_some(),
        };
        let d = g.backward(data(&x), data(&w), data(&dy), needs);
        if let (Some(id), Some(dx)) = (id_x, d.input) {
            grads.register::<Flex>(id, tensor(dx, g.input_shape()));
        }
        if let (Some(id), Some(dw)) = (id_w, d.weight) {
            grads.register::<Flex>(id, tensor(dw, g.weight_shape()));
        }
        if let (Some(id), Some(db)) = (id_b, d.bias) {
            grads.register::<Flex>(id, tensor(db, [g.channels_out()]));
        }
    }
}

/// Either op on `Autodiff<Flex>`, recorded with [`WeightedNode`] as its backward step.
pub fn weighted_ad(x: AdTensor, weight: AdTensor, bias: AdTensor, g: Geometry) -> AdTensor {
    let nodes = [x.node.clone(), weight.node.clone(), bias.node.clone()];
    match WeightedNode
        .prepare::<NoCheckpointing>(nodes)
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let x_state = prep.checkpoint(&x);
            let w_state = prep.checkpoint(&weight);
            let out = g.forward(x.primitive, weight.primitive, Some(bias.primitive));
            prep.finish((x_state, w_state, g), out)
        }
        OpsKind::UnTracked(prep) => prep.finish(g.forward(x.primitive, weight.primitive, Some(bias.primitive))),
    }
}

/// Max pooling forward on flex.
pub fn max_pool2d(x: FlexTensor, g: &Pool) -> FlexTensor {
    let x = dense(x);
    tensor(pool::forward(data(&x), g).0, g.out_shape())
}

/// The autodiff node of max pooling: which window element was the maximum, per output.
#[derive(Debug)]
struct PoolNode;

impl Backward<Flex, 1> for PoolNode {
    type State = (Arc<Vec<u8>>, Pool);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let dy = dense(grads.consume::<Flex>(&ops.node));
        let (which, g) = ops.state;
        if let Some(node) = node_x {
            let dx = pool::backward(data(&dy), &which, &g);
            grads.register::<Flex>(node.id, tensor(dx, [g.batch, g.channels, g.h, g.w]));
        }
    }
}

/// Max pooling on `Autodiff<Flex>`, recorded with [`PoolNode`] as its backward step.
pub fn max_pool2d_ad(x: AdTensor, g: Pool) -> AdTensor {
    match PoolNode
        .prepare::<NoCheckpointing>([x.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let dense_x = dense(x.primitive);
            let (out, which) = pool::forward(data(&dense_x), &g);
            prep.finish((Arc::new(which), g), tensor(out, g.out_shape()))
        }
        OpsKind::UnTracked(prep) => prep.finish(max_pool2d(x.primitive, &g)),
    }
}
