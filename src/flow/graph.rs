//! `ivr graph`: a flow as Graphviz dot (`ivr graph callflows/after_hours.toml | dot -Tsvg`).
//!
//! Nodes show their name, type and prompts; edges show the digits, condition or outcome that
//! takes them. Waiting nodes (gather, record, dial) are boxes with rounded corners, hangups are
//! double octagons, everything else a plain box, so the caller's path reads at a glance.

use std::fmt::Write;

use super::model::{Flow, Node, NodeDef};

/// Renders `flow` as a dot digraph.
pub fn to_dot(flow: &Flow) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; the results are ignored on purpose.
    let _ = writeln!(out, "digraph {} {{", quote(&flow.name));
    let _ = writeln!(out, "  rankdir=TB;");
    let _ = writeln!(out, "  node [fontname=\"Helvetica\", fontsize=11];");
    let _ = writeln!(out, "  edge [fontname=\"Helvetica\", fontsize=10];");
    let _ = writeln!(out, "  \"__start\" [shape=point, width=0.15, label=\"\"];");
    let _ = writeln!(out, "  \"__start\" -> {};", quote(&flow.start.name));
    for def in &flow.nodes {
        let mut label = format!("{}\\n({})", escape(&def.name), def.node.type_name());
        for line in node_details(def) {
            let _ = write!(label, "\\n{}", escape(&line));
        }
        let shape = match &def.node {
            Node::Gather(_) | Node::Record(_) | Node::Dial(_) => "shape=box, style=rounded",
            Node::Hangup(_) => "shape=doubleoctagon",
            Node::Branch(_) => "shape=diamond",
            _ => "shape=box",
        };
        let _ = writeln!(out, "  {} [{shape}, label=\"{label}\"];", quote(&def.name));
    }
    for def in &flow.nodes {
        for edge in def.node.edges() {
            let _ = writeln!(
                out,
                "  {} -> {} [label=\"{}\"];",
                quote(&def.name),
                quote(&edge.target.name),
                escape(&edge.label)
            );
        }
    }
    out.push_str("}\n");
    out
}

/// The lines under a node's name and type: its prompts, the variables it sets, the groups it
/// rings, the event it sends. Shared by the dot output and the admin page's SVG.
pub fn node_details(def: &NodeDef) -> Vec<String> {
    let mut lines: Vec<String> = def
        .node
        .prompts()
        .iter()
        .map(|p| format!("♪ {}", p.name))
        .collect();
    match &def.node {
        Node::Set(s) => lines.extend(s.vars.iter().map(|(k, v, _)| format!("{k} = {v}"))),
        Node::Dial(d) => lines.push(format!("ring {}", d.targets.join(", "))),
        Node::Webhook(w) => lines.push(format!("event {}", w.event)),
        _ => {}
    }
    lines
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn quote(s: &str) -> String {
    format!("\"{}\"", escape(s))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn shipped_flow_as_dot() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let flow = crate::flow::check(
            &root.join("callflows/after_hours.toml"),
            &root.join("prompts"),
        )
        .unwrap();
        let dot = to_dot(&flow);
        assert!(dot.starts_with("digraph \"after-hours\" {\n"));
        assert!(dot.contains("  \"__start\" -> \"hours\";\n"));
        assert!(dot.contains("  \"hours\" -> \"open_line\" [label=\"open and not holiday\"];\n"));
        assert!(dot.contains("  \"menu\" -> \"terms\" [label=\"\\\"5\\\"\"];\n"));
        assert!(dot.contains("  \"menu\" -> \"goodbye\" [label=\"fail\"];\n"));
        assert!(dot.contains("  \"ring_desk\" -> \"voicemail\" [label=\"no_answer\"];\n"));
        assert!(dot.contains("label=\"agreed\\n(set)\\nagreed = true\""));
        assert!(dot.ends_with("}\n"));
    }
}
