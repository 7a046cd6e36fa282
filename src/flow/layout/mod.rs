//! A flow laid out for drawing, in Rust and without an external program (the admin page's
//! `/flows`; Graphviz is not there at run time). Pure: [`layout`] turns a [`Flow`] into placed
//! boxes and routed edges; `http::flow_svg` only paints them.
//!
//! The method is the usual layered one (Sugiyama), kept small:
//! 1. a depth-first walk from the start node marks the edges that go back up (retry loops);
//! 2. the other edges form a DAG, layered by longest path from the start, so each node sits
//!    below everything that leads to it;
//! 3. an edge spanning several layers gets a placeholder in each layer it crosses, so it keeps
//!    its own lane and never runs through a box;
//! 4. the order within each layer is improved by barycenter sweeps (down, then up), keeping the
//!    order with the fewest crossings;
//! 5. boxes are sized from their text, layers stacked with a gap for edge labels, and each box
//!    pulled toward its neighbours' centre without overlapping the one on its left;
//! 6. back edges leave through the gap under their node, climb in a lane right of every box and
//!    enter their target from the gap above it.
//!
//! Parallel edges (two digits to the same node) are drawn once with both labels.

mod place;
mod rank;

use std::collections::HashMap;

use super::graph::node_details;
use super::model::Flow;
use place::{place, route};
use rank::{depth_first, longest_path_layers, order_layers};

pub use place::{Rect, label_rect};

/// Estimated width of one character at the SVG's font (12 px monospace is 7.2 px wide).
const CHAR_W: f64 = 7.5;
const LINE_H: f64 = 15.0;
const PAD_X: f64 = 10.0;
const PAD_Y: f64 = 8.0;
const MIN_BOX_W: f64 = 90.0;
/// Between boxes of one layer.
const GAP_X: f64 = 36.0;
/// Between layers: room for the edge labels.
const GAP_Y: f64 = 76.0;
const MARGIN: f64 = 20.0;
/// Above the first layer: the start marker, and back edges into the first layer.
const TOP: f64 = 56.0;
/// Detail lines longer than this are cut (the TOML has the rest).
const MAX_CHARS: usize = 36;
const DUMMY_W: f64 = 14.0;
const LANE_GAP: f64 = 14.0;
const SWEEPS: usize = 12;

/// A flow's drawing: boxes and edges in pixels, origin top left.
#[derive(Clone, Debug)]
pub struct Layout {
    pub width: f64,
    pub height: f64,
    pub nodes: Vec<PlacedNode>,
    pub edges: Vec<RoutedEdge>,
}

#[derive(Clone, Debug)]
pub struct PlacedNode {
    pub name: String,
    /// The node type (`gather`, `dial`, ...).
    pub kind: &'static str,
    /// Prompts, variables, groups, event: short, one per line.
    pub details: Vec<String>,
    pub start: bool,
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

#[derive(Clone, Debug)]
pub struct RoutedEdge {
    pub from: String,
    pub to: String,
    /// The digit, outcome or condition that takes it (several, comma-separated, for parallel
    /// edges).
    pub label: String,
    /// A polyline from the source box's edge to the target box's edge (the arrow's tip).
    pub points: Vec<(f64, f64)>,
    /// Where the label's text is centred.
    pub label_at: (f64, f64),
    /// Goes back up (a loop): drawn dashed.
    pub back: bool,
}

/// One vertex of the layered graph: a node, or a placeholder of a long edge.
#[derive(Clone, Debug)]
struct Vertex {
    node: Option<usize>,
    layer: usize,
    /// Initial order key (depth-first discovery).
    seed: f64,
    w: f64,
    h: f64,
    x: f64,
    y: f64,
}

/// A merged edge and the vertices it passes (source, placeholders, target).
struct Chain {
    from: usize,
    to: usize,
    label: String,
    back: bool,
    vertices: Vec<usize>,
}

/// Lays out `flow` (see the module comment).
pub fn layout(flow: &Flow) -> Layout {
    let n = flow.nodes.len();
    let index: HashMap<&str, usize> = flow
        .nodes
        .iter()
        .enumerate()
        .map(|(i, d)| (d.name.as_str(), i))
        .collect();
    let start = index.get(flow.start.name.as_str()).copied().unwrap_or(0);

    // Merged edges in file order: (from, to) -> labels.
    let mut merged: Vec<(usize, usize, Vec<String>)> = Vec::new();
    for (i, def) in flow.nodes.iter().enumerate() {
        for e in def.node.edges() {
            let Some(&j) = index.get(e.target.name.as_str()) else {
                continue; // A checked flow has no dangling names.
            };
            match merged.iter_mut().find(|(a, b, _)| *a == i && *b == j) {
                Some((_, _, labels)) => labels.push(e.label.clone()),
                None => merged.push((i, j, vec![e.label.clone()])),
            }
        }
    }
    // Each node's edges as (target, index into `merged`).
    let mut out: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n];
    for (k, (a, b, _)) in merged.iter().enumerate() {
        out[*a].push((*b, k));
    }

    let (order, back) = depth_first(n, start, &out);
    let layer = longest_path_layers(n, &order, &merged, &back);

    // Vertices: nodes first (index = node index), then placeholders.
    let mut vertices: Vec<Vertex> = flow
        .nodes
        .iter()
        .enumerate()
        .map(|(i, def)| {
            let lines = node_lines(def);
            let widest = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0);
            Vertex {
                node: Some(i),
                layer: layer[i],
                seed: order.iter().position(|&o| o == i).unwrap_or(i) as f64,
                w: (widest as f64 * CHAR_W + 2.0 * PAD_X).max(MIN_BOX_W),
                h: lines.len() as f64 * LINE_H + 2.0 * PAD_Y,
                x: 0.0,
                y: 0.0,
            }
        })
        .collect();
    let mut chains = Vec::new();
    for (k, (a, b, labels)) in merged.iter().enumerate() {
        let is_back = back.contains(&k);
        let mut chain = vec![*a];
        if !is_back {
            for l in layer[*a] + 1..layer[*b] {
                vertices.push(Vertex {
                    node: None,
                    layer: l,
                    seed: vertices[*a].seed + 0.01 * (k + 1) as f64 / merged.len() as f64,
                    w: DUMMY_W,
                    h: 0.0,
                    x: 0.0,
                    y: 0.0,
                });
                chain.push(vertices.len() - 1);
            }
        }
        chain.push(*b);
        chains.push(Chain {
            from: *a,
            to: *b,
            label: labels.join(", "),
            back: is_back,
            vertices: chain,
        });
    }

    let layers = order_layers(&vertices, &chains);
    let width = place(&mut vertices, &layers, &chains);
    route(flow, start, vertices, &layers, chains, width)
}

/// The text lines of a node's box: name, type, then its details cut to [`MAX_CHARS`].
pub(crate) fn node_lines(def: &super::model::NodeDef) -> Vec<String> {
    let mut lines = vec![def.name.clone(), format!("({})", def.node.type_name())];
    lines.extend(node_details(def).into_iter().map(|l| {
        if l.chars().count() > MAX_CHARS {
            let cut: String = l.chars().take(MAX_CHARS - 1).collect();
            format!("{cut}…")
        } else {
            l
        }
    }));
    lines
}

#[cfg(test)]
mod tests;
