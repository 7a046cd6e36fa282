//! The layered layout on the shipped flows and on loops: every node drawn once, every edge with
//! its label, no two boxes overlapping, edges starting and ending on their boxes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::{Layout, label_rect, layout};
use crate::flow::model::Flow;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every flow the repository ships or tests with.
fn shipped_flows() -> Vec<Flow> {
    let mut files = vec![
        root().join("callflows/after_hours.toml"),
        root().join("callflows/examples/simple_menu.toml"),
    ];
    let mut tests: Vec<PathBuf> = std::fs::read_dir(root().join("tests/flows"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    tests.sort();
    files.extend(tests);
    files
        .iter()
        .map(|f| {
            crate::flow::check(f, &root().join("prompts"))
                .unwrap_or_else(|d| panic!("{}: {d}", f.display()))
        })
        .collect()
}

/// A menu whose invalid choice and "repeat" both loop back, and a voicemail that offers to
/// re-record: three back edges, one of them a self-loop through a goto.
fn looping_flow() -> Flow {
    let text = r#"
name = "loops"
start = "menu"

[nodes.menu]
type = "gather"
prompt = "press_5"
digits = { "5" = "record", "9" = "again" }
timeout = "5s"
retries = 1
on_fail = "bye"

[nodes.again]
type = "goto"
next = "menu"

[nodes.record]
type = "record"
next = "check"

[nodes.check]
type = "gather"
digits = { "1" = "bye", "2" = "record" }
timeout = "5s"
on_fail = "bye"

[nodes.bye]
type = "hangup"
"#;
    let prompts: BTreeSet<String> = ["press_5".to_string()].into();
    crate::flow::check_source(
        Path::new("loops.toml"),
        text,
        &root().join("prompts"),
        &prompts,
    )
    .unwrap_or_else(|d| panic!("{d}"))
}

fn overlaps(a: (f64, f64, f64, f64), b: (f64, f64, f64, f64)) -> bool {
    a.0 < b.0 + b.2 && b.0 < a.0 + a.2 && a.1 < b.1 + b.3 && b.1 < a.1 + a.3
}

fn on_border(p: (f64, f64), r: (f64, f64, f64, f64), side_y: f64) -> bool {
    (p.1 - side_y).abs() < 1e-6 && p.0 >= r.0 && p.0 <= r.0 + r.2
}

/// The properties every drawing must have.
fn assert_sound(flow: &Flow, l: &Layout) {
    // Every node once.
    let drawn: Vec<&str> = l.nodes.iter().map(|n| n.name.as_str()).collect();
    let mut unique = drawn.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(
        unique.len(),
        drawn.len(),
        "{}: a node drawn twice",
        flow.name
    );
    let mut names: Vec<&str> = flow.nodes.iter().map(|n| n.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(unique, names, "{}", flow.name);
    assert_eq!(l.nodes.iter().filter(|n| n.start).count(), 1);
    assert!(l.nodes.iter().any(|n| n.start && n.name == flow.start.name));

    // Every edge of the model, with its label, on a drawn edge between the same two nodes.
    for def in &flow.nodes {
        for e in def.node.edges() {
            let drawn = l
                .edges
                .iter()
                .find(|d| d.from == def.name && d.to == e.target.name)
                .unwrap_or_else(|| {
                    panic!("{}: no edge {} -> {}", flow.name, def.name, e.target.name)
                });
            assert!(
                drawn.label.split(", ").any(|part| part == e.label),
                "{}: edge {} -> {} lacks label {:?} (has {:?})",
                flow.name,
                def.name,
                e.target.name,
                e.label,
                drawn.label
            );
        }
    }

    // No two boxes overlap; everything is inside the drawing.
    let rects: Vec<_> = l.nodes.iter().map(|n| (n.x, n.y, n.w, n.h)).collect();
    for (i, a) in rects.iter().enumerate() {
        assert!(a.0 >= 0.0 && a.1 >= 0.0 && a.0 + a.2 <= l.width && a.1 + a.3 <= l.height);
        for (j, b) in rects.iter().enumerate().skip(i + 1) {
            assert!(
                !overlaps(*a, *b),
                "{}: boxes {} and {} overlap: {a:?} {b:?}",
                flow.name,
                l.nodes[i].name,
                l.nodes[j].name
            );
        }
    }

    // Edges leave their source's bottom and end on the target's top; no point outside.
    for e in &l.edges {
        let rect = |name: &str| {
            let n = l.nodes.iter().find(|n| n.name == name).unwrap();
            (n.x, n.y, n.w, n.h)
        };
        let (from, to) = (rect(&e.from), rect(&e.to));
        let (first, last) = (e.points[0], *e.points.last().unwrap());
        assert!(on_border(first, from, from.1 + from.3), "{e:?}");
        assert!(on_border(last, to, to.1), "{e:?}");
        for p in &e.points {
            assert!(
                p.0 >= 0.0 && p.0 <= l.width && p.1 >= 0.0 && p.1 <= l.height,
                "{e:?}"
            );
        }
        // Forward edges go down; back edges go up (or sideways, for a self-loop).
        assert_eq!(e.back, last.1 <= first.1, "{e:?}");
    }

    // Labels are readable: none covers a box or another label.
    let labels: Vec<_> = l
        .edges
        .iter()
        .map(|e| label_rect(&e.label, e.label_at))
        .collect();
    for (i, a) in labels.iter().enumerate() {
        for (n, b) in l.nodes.iter().map(|n| (n, (n.x, n.y, n.w, n.h))) {
            assert!(
                !overlaps(*a, b),
                "{}: label {:?} covers {}",
                flow.name,
                l.edges[i].label,
                n.name
            );
        }
        for (j, b) in labels.iter().enumerate().skip(i + 1) {
            assert!(
                !overlaps(*a, *b),
                "{}: labels {:?} and {:?} overlap",
                flow.name,
                l.edges[i].label,
                l.edges[j].label
            );
        }
    }
}

#[test]
fn shipped_flows_are_drawn_whole_without_overlaps() {
    let flows = shipped_flows();
    assert!(flows.len() >= 3);
    for flow in &flows {
        assert_sound(flow, &layout(flow));
    }
}

#[test]
fn the_after_hours_flow_reads_top_down_from_its_start() {
    let flows = shipped_flows();
    let flow = &flows[0];
    let l = layout(flow);
    let node = |name: &str| l.nodes.iter().find(|n| n.name == name).unwrap();
    // The start is on top, alone in its layer.
    let start = node(&flow.start.name);
    assert!(l.nodes.iter().all(|n| n.y >= start.y));
    assert!(l.nodes.iter().filter(|n| n.y == start.y).count() == 1);
    // A node sits below every node with a forward edge into it.
    for e in l.edges.iter().filter(|e| !e.back) {
        assert!(node(&e.to).y > node(&e.from).y, "{e:?}");
    }
    let menu_to_terms = l
        .edges
        .iter()
        .find(|e| e.from == "menu" && e.to == "terms")
        .unwrap();
    assert_eq!(menu_to_terms.label, "\"5\"");
}

#[test]
fn loops_are_back_edges_routed_right_of_every_box() {
    let flow = looping_flow();
    let l = layout(&flow);
    assert_sound(&flow, &l);
    let back: Vec<(&str, &str)> = l
        .edges
        .iter()
        .filter(|e| e.back)
        .map(|e| (e.from.as_str(), e.to.as_str()))
        .collect();
    assert_eq!(back, [("again", "menu"), ("check", "record")]);
    let right = l.nodes.iter().map(|n| n.x + n.w).fold(0.0, f64::max);
    for e in l.edges.iter().filter(|e| e.back) {
        // The climb is in a lane of its own, right of the boxes.
        assert!(e.points.iter().any(|p| p.0 > right), "{e:?}");
    }
    let lanes: BTreeSet<i64> = l
        .edges
        .iter()
        .filter(|e| e.back)
        .map(|e| e.points[2].0 as i64)
        .collect();
    assert_eq!(lanes.len(), 2, "one lane per back edge");
}
