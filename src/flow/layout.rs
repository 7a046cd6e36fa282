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

use std::collections::HashMap;

use super::graph::node_details;
use super::model::Flow;

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
    let out: Vec<Vec<usize>> = (0..n)
        .map(|i| {
            merged
                .iter()
                .filter(|(a, _, _)| *a == i)
                .map(|(_, b, _)| *b)
                .collect()
        })
        .collect();

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

/// Depth-first preorder from `start` (then from any node not reached, in file order) and the
/// indices (into the merged edge list, numbered as `out` flattens) of edges that close a cycle.
fn depth_first(
    n: usize,
    start: usize,
    out: &[Vec<usize>],
) -> (Vec<usize>, std::collections::HashSet<usize>) {
    // Edge k is the k-th (from, to) pair in from-major order, matching `merged`'s file order.
    let mut edge_id: HashMap<(usize, usize), usize> = HashMap::new();
    let mut k = 0;
    for (a, targets) in out.iter().enumerate() {
        for &b in targets {
            edge_id.insert((a, b), k);
            k += 1;
        }
    }
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut mark = vec![Mark::New; n];
    let mut order = Vec::with_capacity(n);
    let mut back = std::collections::HashSet::new();
    let roots = std::iter::once(start).chain(0..n);
    for root in roots {
        if mark[root] != Mark::New {
            continue;
        }
        // An explicit stack of (node, next child index): flows may be long chains.
        let mut stack = vec![(root, 0usize)];
        mark[root] = Mark::Open;
        order.push(root);
        while let Some((v, i)) = stack.pop() {
            if let Some(&w) = out[v].get(i) {
                stack.push((v, i + 1));
                match mark[w] {
                    Mark::New => {
                        mark[w] = Mark::Open;
                        order.push(w);
                        stack.push((w, 0));
                    }
                    Mark::Open => {
                        back.insert(edge_id[&(v, w)]);
                    }
                    Mark::Done => {}
                }
            } else {
                mark[v] = Mark::Done;
            }
        }
    }
    (order, back)
}

/// Layer of each node: 0 for roots, else one more than its deepest forward predecessor.
fn longest_path_layers(
    n: usize,
    order: &[usize],
    merged: &[(usize, usize, Vec<String>)],
    back: &std::collections::HashSet<usize>,
) -> Vec<usize> {
    let forward: Vec<(usize, usize)> = merged
        .iter()
        .enumerate()
        .filter(|(k, _)| !back.contains(k))
        .map(|(_, (a, b, _))| (*a, *b))
        .collect();
    // Kahn's topological order over the forward edges (a DAG once back edges are out).
    let mut indegree = vec![0usize; n];
    for &(_, b) in &forward {
        indegree[b] += 1;
    }
    let mut ready: Vec<usize> = order
        .iter()
        .rev()
        .copied()
        .filter(|&v| indegree[v] == 0)
        .collect();
    let mut layer = vec![0usize; n];
    while let Some(v) = ready.pop() {
        for &(a, b) in &forward {
            if a == v {
                layer[b] = layer[b].max(layer[v] + 1);
                indegree[b] -= 1;
                if indegree[b] == 0 {
                    ready.push(b);
                }
            }
        }
    }
    layer
}

/// The vertices of each layer, left to right, after barycenter sweeps.
fn order_layers(vertices: &[Vertex], chains: &[Chain]) -> Vec<Vec<usize>> {
    let depth = vertices.iter().map(|v| v.layer + 1).max().unwrap_or(0);
    let mut layers: Vec<Vec<usize>> = vec![Vec::new(); depth];
    for (i, v) in vertices.iter().enumerate() {
        layers[v.layer].push(i);
    }
    for l in &mut layers {
        l.sort_by(|a, b| vertices[*a].seed.total_cmp(&vertices[*b].seed));
    }
    // Adjacent-layer links of forward chains (upper vertex, lower vertex).
    let links: Vec<(usize, usize)> = chains
        .iter()
        .filter(|c| !c.back)
        .flat_map(|c| c.vertices.windows(2).map(|w| (w[0], w[1])))
        .collect();
    let mut best = layers.clone();
    let mut best_crossings = crossings(&layers, &links, vertices.len());
    for sweep in 0..SWEEPS {
        let down = sweep % 2 == 0;
        let range: Vec<usize> = if down {
            (1..depth).collect()
        } else {
            (0..depth.saturating_sub(1)).rev().collect()
        };
        for l in range {
            let pos = positions(&layers, vertices.len());
            let mut keyed: Vec<(f64, usize)> = layers[l]
                .iter()
                .enumerate()
                .map(|(i, &v)| {
                    let neighbours: Vec<f64> = links
                        .iter()
                        .filter_map(|&(a, b)| match (down, a == v, b == v) {
                            (true, _, true) => Some(pos[a]),
                            (false, true, _) => Some(pos[b]),
                            _ => None,
                        })
                        .collect();
                    let key = if neighbours.is_empty() {
                        i as f64
                    } else {
                        neighbours.iter().sum::<f64>() / neighbours.len() as f64
                    };
                    (key, v)
                })
                .collect();
            keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
            layers[l] = keyed.into_iter().map(|(_, v)| v).collect();
        }
        let c = crossings(&layers, &links, vertices.len());
        if c < best_crossings {
            best_crossings = c;
            best = layers.clone();
        }
    }
    best
}

/// Each vertex's index within its layer.
fn positions(layers: &[Vec<usize>], count: usize) -> Vec<f64> {
    let mut pos = vec![0.0; count];
    for l in layers {
        for (i, &v) in l.iter().enumerate() {
            pos[v] = i as f64;
        }
    }
    pos
}

/// Pairs of links between the same two layers that cross.
fn crossings(layers: &[Vec<usize>], links: &[(usize, usize)], count: usize) -> usize {
    let pos = positions(layers, count);
    let mut total = 0;
    for (i, &(a, b)) in links.iter().enumerate() {
        for &(c, d) in &links[i + 1..] {
            let same_layers = layers.iter().position(|l| l.contains(&a))
                == layers.iter().position(|l| l.contains(&c));
            if same_layers && (pos[a] - pos[c]) * (pos[b] - pos[d]) < 0.0 {
                total += 1;
            }
        }
    }
    total
}

/// Sets every vertex's box; returns the width of the boxes' area (lanes go to its right).
fn place(vertices: &mut [Vertex], layers: &[Vec<usize>], chains: &[Chain]) -> f64 {
    // Layers stacked top to bottom; a placeholder spans its layer's whole band.
    let mut y = TOP;
    for l in layers {
        let band = l
            .iter()
            .filter(|&&v| vertices[v].node.is_some())
            .map(|&v| vertices[v].h)
            .fold(LINE_H, f64::max);
        for &v in l {
            vertices[v].y = y;
            if vertices[v].node.is_none() {
                vertices[v].h = band;
            }
        }
        y += band + GAP_Y;
    }
    // Start packed left, then pull each box toward its neighbours' centre (down, then up),
    // never closer than GAP_X to the box on its left.
    for l in layers {
        let mut x = MARGIN;
        for &v in l {
            vertices[v].x = x;
            x += vertices[v].w + GAP_X;
        }
    }
    let links: Vec<(usize, usize)> = chains
        .iter()
        .filter(|c| !c.back)
        .flat_map(|c| c.vertices.windows(2).map(|w| (w[0], w[1])))
        .collect();
    for pass in 0..4 {
        let down = pass % 2 == 0;
        let order: Vec<usize> = if down {
            (1..layers.len()).collect()
        } else {
            (0..layers.len().saturating_sub(1)).rev().collect()
        };
        for l in order {
            let mut left = MARGIN;
            for &v in &layers[l] {
                let centres: Vec<f64> = links
                    .iter()
                    .filter_map(|&(a, b)| match (down, a == v, b == v) {
                        (true, _, true) => Some(a),
                        (false, true, _) => Some(b),
                        _ => None,
                    })
                    .map(|u| vertices[u].x + vertices[u].w / 2.0)
                    .collect();
                let want = if centres.is_empty() {
                    vertices[v].x
                } else {
                    centres.iter().sum::<f64>() / centres.len() as f64 - vertices[v].w / 2.0
                };
                vertices[v].x = want.max(left);
                left = vertices[v].x + vertices[v].w + GAP_X;
            }
        }
    }
    let min_x = vertices.iter().map(|v| v.x).fold(f64::INFINITY, f64::min);
    for v in vertices.iter_mut() {
        v.x += MARGIN - min_x;
    }
    vertices.iter().map(|v| v.x + v.w).fold(MARGIN, f64::max)
}

/// Turns vertices and chains into the drawing: edge polylines with spread ports, back edges in
/// lanes right of `width`.
fn route(
    flow: &Flow,
    start: usize,
    vertices: Vec<Vertex>,
    layers: &[Vec<usize>],
    chains: Vec<Chain>,
    width: f64,
) -> Layout {
    let band_top = |l: usize| vertices[layers[l][0]].y;
    let band_bottom = |l: usize| {
        layers[l]
            .iter()
            .map(|&v| vertices[v].y + vertices[v].h)
            .fold(0.0, f64::max)
    };
    let centre = |v: usize| vertices[v].x + vertices[v].w / 2.0;
    let mut lane = 0usize;
    // First the middle of each route (placeholders, lanes); ports are added once every edge of
    // a box is known, spread along its side in the order the edges leave or arrive.
    struct Draft {
        chain: usize,
        middle: Vec<(f64, f64)>,
        lane: Option<usize>,
    }
    let mut drafts = Vec::new();
    for (k, c) in chains.iter().enumerate() {
        if c.back {
            let lane_x = width + LANE_GAP * (lane + 1) as f64;
            let below = band_bottom(vertices[c.from].layer) + 10.0 + 5.0 * (lane % 8) as f64;
            let above = band_top(vertices[c.to].layer) - 10.0 - 5.0 * (lane % 8) as f64;
            drafts.push(Draft {
                chain: k,
                middle: vec![(lane_x, below), (lane_x, above)],
                lane: Some(lane),
            });
            lane += 1;
        } else {
            let middle = c.vertices[1..c.vertices.len() - 1]
                .iter()
                .flat_map(|&d| {
                    let x = centre(d);
                    [(x, vertices[d].y), (x, vertices[d].y + vertices[d].h)]
                })
                .collect();
            drafts.push(Draft {
                chain: k,
                middle,
                lane: None,
            });
        }
    }
    // Ports: outgoing along the bottom, incoming along the top, ordered by where the edge goes.
    let port_x = |v: usize, slot: usize, of: usize| {
        vertices[v].x + vertices[v].w * (slot + 1) as f64 / (of + 1) as f64
    };
    let mut out_port = vec![0.0; chains.len()];
    let mut in_port = vec![0.0; chains.len()];
    for v in 0..flow.nodes.len() {
        let toward = |d: &Draft, first: bool| {
            let c = &chains[d.chain];
            match (d.middle.first(), d.middle.last()) {
                (Some(p), _) if first => p.0,
                (_, Some(p)) if !first => p.0,
                _ if first => centre(c.to),
                _ => centre(c.from),
            }
        };
        let mut leaving: Vec<&Draft> = drafts
            .iter()
            .filter(|d| chains[d.chain].from == v)
            .collect();
        leaving.sort_by(|a, b| toward(a, true).total_cmp(&toward(b, true)));
        for (slot, d) in leaving.iter().enumerate() {
            out_port[d.chain] = port_x(v, slot, leaving.len());
        }
        let mut arriving: Vec<&Draft> = drafts.iter().filter(|d| chains[d.chain].to == v).collect();
        arriving.sort_by(|a, b| toward(a, false).total_cmp(&toward(b, false)));
        for (slot, d) in arriving.iter().enumerate() {
            in_port[d.chain] = port_x(v, slot, arriving.len());
        }
    }
    let mut edges = Vec::new();
    for d in drafts {
        let c = &chains[d.chain];
        let (from, to) = (&vertices[c.from], &vertices[c.to]);
        let tail = (out_port[d.chain], from.y + from.h);
        let head = (in_port[d.chain], to.y);
        let mut points = vec![tail];
        if d.lane.is_some() {
            let (lane_x, below) = d.middle[0];
            let (_, above) = d.middle[1];
            points.extend([
                (tail.0, below),
                (lane_x, below),
                (lane_x, above),
                (head.0, above),
            ]);
        } else {
            points.extend(d.middle.iter().copied());
        }
        points.push(head);
        edges.push(RoutedEdge {
            from: flow.nodes[c.from].name.clone(),
            to: flow.nodes[c.to].name.clone(),
            label: c.label.clone(),
            points,
            label_at: (0.0, 0.0),
            back: c.back,
        });
    }
    let nodes: Vec<PlacedNode> = flow
        .nodes
        .iter()
        .enumerate()
        .map(|(i, def)| {
            let v = &vertices[i];
            let lines = node_lines(def);
            PlacedNode {
                name: def.name.clone(),
                kind: def.node.type_name(),
                details: lines[2..].to_vec(),
                start: i == start,
                x: v.x,
                y: v.y,
                w: v.w,
                h: v.h,
            }
        })
        .collect();
    let boxes: Vec<Rect> = nodes
        .iter()
        .map(|n: &PlacedNode| (n.x, n.y, n.w, n.h))
        .collect();
    place_labels(&mut edges, &boxes);
    let bottom = layers
        .len()
        .checked_sub(1)
        .map_or(TOP, |l| band_bottom(l) + 10.0 + 5.0 * 8.0);
    Layout {
        width: width + LANE_GAP * (lane + 1) as f64 + MARGIN,
        height: bottom + MARGIN,
        nodes,
        edges,
    }
}

/// x, y, width, height.
pub type Rect = (f64, f64, f64, f64);

/// Where on its route a label is tried, as fractions of a leg, best first.
const LABEL_SPOTS: [f64; 7] = [0.5, 0.35, 0.65, 0.2, 0.8, 0.1, 0.9];

/// The box a label's text covers when centred on `at` (the text's baseline).
pub fn label_rect(label: &str, at: (f64, f64)) -> Rect {
    let w = label.chars().count() as f64 * 7.2 + 4.0;
    (at.0 - w / 2.0, at.1 - 11.0, w, 15.0)
}

fn overlap(a: Rect, b: Rect) -> bool {
    a.0 < b.0 + b.2 && b.0 < a.0 + a.2 && a.1 < b.1 + b.3 && b.1 < a.1 + a.3
}

/// Puts each label on its route (a forward edge's legs from the top, a back edge's run to its
/// lane first) at the first spot that covers no box and no label placed before; when every
/// spot is taken, the first one.
fn place_labels(edges: &mut [RoutedEdge], boxes: &[Rect]) {
    let mut taken: Vec<Rect> = Vec::new();
    for e in edges.iter_mut() {
        let legs: Vec<((f64, f64), (f64, f64))> = if e.back {
            // Tail down, run right to the lane, climb, run left, head down: the runs first.
            [1, 3, 2]
                .iter()
                .filter_map(|&i| Some((*e.points.get(i)?, *e.points.get(i + 1)?)))
                .collect()
        } else {
            e.points.windows(2).map(|w| (w[0], w[1])).collect()
        };
        let spots: Vec<(f64, f64)> = legs
            .iter()
            .flat_map(|&(a, b)| {
                LABEL_SPOTS.iter().map(move |t| {
                    let (x, y) = (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1));
                    // On a horizontal run the text sits just above the line.
                    if (a.1 - b.1).abs() < 1e-6 {
                        (x, y - 4.0)
                    } else {
                        (x, y + 4.0)
                    }
                })
            })
            .collect();
        let free = |at: &(f64, f64)| {
            let r = label_rect(&e.label, *at);
            boxes.iter().chain(taken.iter()).all(|b| !overlap(r, *b))
        };
        let at = spots
            .iter()
            .copied()
            .find(free)
            .or(spots.first().copied())
            .unwrap_or(e.points[0]);
        taken.push(label_rect(&e.label, at));
        e.label_at = at;
    }
}
