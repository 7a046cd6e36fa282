//! Coordinates: boxes stacked in layers, edges routed between them (placeholders, ports, lanes
//! for back edges) and labels put where they cover nothing.

use super::{
    Chain, Flow, GAP_X, GAP_Y, LANE_GAP, LINE_H, Layout, MARGIN, PlacedNode, RoutedEdge, TOP,
    Vertex, node_lines,
};

/// Sets every vertex's box; returns the width of the boxes' area (lanes go to its right).
pub(super) fn place(vertices: &mut [Vertex], layers: &[Vec<usize>], chains: &[Chain]) -> f64 {
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
pub(super) fn route(
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
