//! Which layer each node goes in and the order within layers: the graph-theoretic half of the
//! layout (no coordinates).

use std::collections::HashSet;

use super::{Chain, SWEEPS, Vertex};

/// Depth-first preorder from `start` (then from any node not reached, in file order) and the
/// edges that close a cycle. `out[v]` lists (target, edge index) of node `v`'s edges.
pub(super) fn depth_first(
    n: usize,
    start: usize,
    out: &[Vec<(usize, usize)>],
) -> (Vec<usize>, HashSet<usize>) {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut mark = vec![Mark::New; n];
    let mut order = Vec::with_capacity(n);
    let mut back = HashSet::new();
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
            if let Some(&(w, edge)) = out[v].get(i) {
                stack.push((v, i + 1));
                match mark[w] {
                    Mark::New => {
                        mark[w] = Mark::Open;
                        order.push(w);
                        stack.push((w, 0));
                    }
                    Mark::Open => {
                        back.insert(edge);
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
pub(super) fn longest_path_layers(
    n: usize,
    order: &[usize],
    merged: &[(usize, usize, Vec<String>)],
    back: &HashSet<usize>,
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
pub(super) fn order_layers(vertices: &[Vertex], chains: &[Chain]) -> Vec<Vec<usize>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn vertex(layer: usize, seed: f64) -> Vertex {
        Vertex {
            node: Some(0),
            layer,
            seed,
            w: 10.0,
            h: 10.0,
            x: 0.0,
            y: 0.0,
        }
    }

    fn chain(from: usize, to: usize) -> Chain {
        Chain {
            from,
            to,
            label: String::new(),
            back: false,
            vertices: vec![from, to],
        }
    }

    #[test]
    fn barycenter_sweeps_undo_a_crossing_the_first_order_has() {
        // a(0) b(1) over c(2) d(3), with a -> d and b -> c: the seed order crosses once.
        let vertices = [
            vertex(0, 0.0),
            vertex(0, 1.0),
            vertex(1, 2.0),
            vertex(1, 3.0),
        ];
        let chains = [chain(0, 3), chain(1, 2)];
        let links = [(0, 3), (1, 2)];
        let seeded = vec![vec![0, 1], vec![2, 3]];
        assert_eq!(crossings(&seeded, &links, 4), 1);
        let ordered = order_layers(&vertices, &chains);
        assert_eq!(crossings(&ordered, &links, 4), 0, "{ordered:?}");
    }

    #[test]
    fn a_loop_is_a_back_edge_and_layers_follow_the_longest_path() {
        // 0 -> 1 -> 2 -> 0 (loop), and 0 -> 2 directly: 2 sits below 1, not beside it.
        let out = vec![vec![(1, 0), (2, 1)], vec![(2, 2)], vec![(0, 3)]];
        let (order, back) = depth_first(3, 0, &out);
        assert_eq!(order, [0, 1, 2]);
        assert_eq!(back, HashSet::from([3]));
        let merged = vec![
            (0, 1, vec![]),
            (0, 2, vec![]),
            (1, 2, vec![]),
            (2, 0, vec![]),
        ];
        assert_eq!(longest_path_layers(3, &order, &merged, &back), [0, 1, 2]);
    }
}
