//! Paints a laid-out flow ([`crate::flow::layout`]) as inline SVG: boxes coloured by node type,
//! edges as polylines with arrowheads (dashed when they loop back), labels on a white ground.
//! Every text is escaped; no scripts, styles or ids (several drawings share one page).

use std::fmt::Write as _;

use crate::flow::layout::{Layout, PlacedNode, label_rect};

const EDGE: &str = "#555";
const LABEL: &str = "#1d3557";

/// `s` safe as XML text or a double-quoted attribute: markup escaped, and the control
/// characters XML 1.0 forbids dropped (a TOML string may hold them).
fn xml(s: &str) -> String {
    let kept: String = s
        .chars()
        .filter(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
        .collect();
    super::html::esc(&kept)
}

fn fill(kind: &str) -> &'static str {
    match kind {
        "gather" | "record" | "dial" => "#e7f0fd",
        "branch" => "#fff4d6",
        "hangup" => "#fde7e9",
        "webhook" | "set" => "#eef7ee",
        _ => "#f6f6f6",
    }
}

/// The SVG element for `layout`, titled `title`.
pub fn render(layout: &Layout, title: &str) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"flow\" width=\"{w:.0}\" height=\"{h:.0}\" \
         viewBox=\"0 0 {w:.0} {h:.0}\" role=\"img\" aria-label=\"{t}\" font-family=\"monospace\" font-size=\"12\">\
         <title>{t}</title>",
        w = layout.width,
        h = layout.height,
        t = xml(title),
    );
    for e in &layout.edges {
        let points: Vec<String> = e
            .points
            .iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect();
        let dash = if e.back {
            " stroke-dasharray=\"6 4\""
        } else {
            ""
        };
        let _ = write!(
            out,
            "<g class=\"edge\" data-from=\"{}\" data-to=\"{}\"><polyline points=\"{}\" fill=\"none\" stroke=\"{EDGE}\" stroke-width=\"1.3\"{dash}/>",
            xml(&e.from),
            xml(&e.to),
            points.join(" ")
        );
        if let [.., a, b] = e.points.as_slice() {
            arrowhead(&mut out, *a, *b);
        }
        // A white ground under the label: the line it sits on must not strike through it.
        let (x, y, w, h) = label_rect(&e.label, e.label_at);
        let _ = write!(
            out,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" fill=\"#fff\" fill-opacity=\"0.9\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"{LABEL}\">{}</text></g>",
            e.label_at.0,
            e.label_at.1,
            xml(&e.label)
        );
    }
    for n in &layout.nodes {
        node(&mut out, n);
    }
    out.push_str("</svg>");
    out
}

/// A filled triangle with its tip at `tip`, pointing along `from` → `tip`.
fn arrowhead(out: &mut String, from: (f64, f64), tip: (f64, f64)) {
    let (dx, dy) = (tip.0 - from.0, tip.1 - from.1);
    let len = (dx * dx + dy * dy).sqrt();
    if len == 0.0 {
        return;
    }
    let (ux, uy) = (dx / len, dy / len);
    let base = (tip.0 - 9.0 * ux, tip.1 - 9.0 * uy);
    let _ = write!(
        out,
        "<polygon points=\"{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}\" fill=\"{EDGE}\"/>",
        tip.0,
        tip.1,
        base.0 - 4.0 * uy,
        base.1 + 4.0 * ux,
        base.0 + 4.0 * uy,
        base.1 - 4.0 * ux
    );
}

fn node(out: &mut String, n: &PlacedNode) {
    let rounded = if matches!(n.kind, "gather" | "record" | "dial") {
        8
    } else {
        0
    };
    let border = if n.kind == "hangup" { 2.5 } else { 1.2 };
    let _ = write!(
        out,
        "<g class=\"node\" data-name=\"{name}\" data-kind=\"{kind}\"><rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"{rounded}\" fill=\"{}\" stroke=\"#333\" stroke-width=\"{border}\"/>",
        n.x,
        n.y,
        n.w,
        n.h,
        fill(n.kind),
        name = xml(&n.name),
        kind = n.kind,
    );
    if n.start {
        // The way in: a dot above the start node with an arrow down to it.
        let cx = n.x + n.w / 2.0;
        let _ = write!(
            out,
            "<circle cx=\"{cx:.1}\" cy=\"{:.1}\" r=\"5\" fill=\"#333\"/><line x1=\"{cx:.1}\" y1=\"{:.1}\" x2=\"{cx:.1}\" y2=\"{:.1}\" stroke=\"#333\" stroke-width=\"1.3\"/>",
            n.y - 30.0,
            n.y - 25.0,
            n.y - 9.0,
        );
        arrowhead(out, (cx, n.y - 25.0), (cx, n.y));
    }
    let x = n.x + 10.0;
    let mut y = n.y + 8.0 + 11.0;
    let _ = write!(
        out,
        "<text x=\"{x:.1}\" y=\"{y:.1}\" font-weight=\"bold\">{}</text>",
        xml(&n.name)
    );
    y += 15.0;
    let _ = write!(
        out,
        "<text x=\"{x:.1}\" y=\"{y:.1}\" fill=\"#666\">({})</text>",
        n.kind
    );
    for line in &n.details {
        y += 15.0;
        let _ = write!(out, "<text x=\"{x:.1}\" y=\"{y:.1}\">{}</text>", xml(line));
    }
    out.push_str("</g>");
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::flow::layout::layout;

    fn root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    #[test]
    fn shipped_flow_svg_parses_and_shows_every_node_and_label() {
        let flow = crate::flow::check(
            &root().join("callflows/after_hours.toml"),
            &root().join("prompts"),
        )
        .unwrap();
        let svg = render(&layout(&flow), &flow.name);
        let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
        let root_el = doc.root_element();
        assert_eq!(root_el.tag_name().name(), "svg");
        assert_eq!(
            root_el.tag_name().namespace(),
            Some("http://www.w3.org/2000/svg")
        );
        // One node group per node, named once.
        let named: Vec<&str> = doc
            .descendants()
            .filter(|n| n.attribute("class") == Some("node"))
            .filter_map(|n| n.attribute("data-name"))
            .collect();
        assert_eq!(named.len(), flow.nodes.len());
        for def in &flow.nodes {
            assert_eq!(named.iter().filter(|n| **n == def.name).count(), 1);
        }
        // Every edge's label is the text of an edge group from its source to its target.
        for def in &flow.nodes {
            for e in def.node.edges() {
                let found = doc.descendants().any(|g| {
                    g.attribute("class") == Some("edge")
                        && g.attribute("data-from") == Some(def.name.as_str())
                        && g.attribute("data-to") == Some(e.target.name.as_str())
                        && g.descendants()
                            .filter(|t| t.has_tag_name("text"))
                            .filter_map(|t| t.text())
                            .any(|t| t.split(", ").any(|l| l == e.label))
                });
                assert!(found, "{} -> {} [{}]", def.name, e.target.name, e.label);
            }
        }
        // Each edge has its line and its arrowhead.
        let edges = doc
            .descendants()
            .filter(|n| n.attribute("class") == Some("edge"));
        for g in edges {
            assert_eq!(
                g.children().filter(|c| c.has_tag_name("polyline")).count(),
                1
            );
            assert_eq!(
                g.children().filter(|c| c.has_tag_name("polygon")).count(),
                1
            );
        }
    }

    #[test]
    fn hostile_text_is_escaped_and_still_parses() {
        let text = "name = \"<x> & 'y'\"\nstart = \"s\"\n[nodes.s]\ntype = \"set\"\n\
                    vars = { note = \"</text><script>alert(1)</script>\\u0001\" }\nnext = \"bye\"\n\
                    [nodes.bye]\ntype = \"hangup\"\n";
        let flow = crate::flow::check_source(
            Path::new("x.toml"),
            text,
            &root().join("prompts"),
            &Default::default(),
        )
        .unwrap_or_else(|d| panic!("{d}"));
        let svg = render(&layout(&flow), &flow.name);
        assert!(!svg.contains("<script>"), "{svg}");
        let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{e}\n{svg}"));
        let title = doc
            .descendants()
            .find(|n| n.has_tag_name("title"))
            .and_then(|n| n.text());
        assert_eq!(title, Some("<x> & 'y'"));
        assert!(
            doc.descendants()
                .filter_map(|n| n.text())
                .any(|t| t.contains("</text><script>"))
        );
    }
}
