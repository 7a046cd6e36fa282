//! `ivr check`: turn a flow file into a [`Flow`] or explain, with positions and fixes, why not.
//!
//! Order: TOML syntax, then each node's keys (`parse.rs` and `nodes/*.rs`), then the flow as a
//! graph: every name must exist, every node must be reachable from `start`, no cycle may run
//! without waiting for the caller, every prompt needs its WAV file. Graph checks run only once
//! names resolve, so one typo gives one message, not a cascade.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::diag::{Diagnostic, Diagnostics, Severity, Sink, did_you_mean};
use super::model::{Flow, NodeDef};
use super::parse::{RawFlow, parse};
use super::run::BUILTIN_VARS;

/// Checks the flow at `flow_path` against the prompts in `prompt_dir`.
pub fn check(flow_path: &Path, prompt_dir: &Path) -> Result<Flow, Diagnostics> {
    let whole_file = |message: String, hint: Option<String>| {
        Diagnostics(vec![Diagnostic {
            file: flow_path.to_path_buf(),
            line: 0,
            col: 0,
            severity: Severity::Error,
            message,
            hint,
        }])
    };
    let text = std::fs::read_to_string(flow_path)
        .map_err(|e| whole_file(format!("cannot read the flow: {e}"), None))?;
    let prompts = list_prompts(prompt_dir).map_err(|e| {
        whole_file(
            format!(
                "cannot read the prompt directory {}: {e}",
                prompt_dir.display()
            ),
            Some("point `--prompts` at the directory holding the NAME.wav files".into()),
        )
    })?;
    check_source(flow_path, &text, prompt_dir, &prompts)
}

/// The names of the `*.wav` files in `dir`.
pub fn list_prompts(dir: &Path) -> std::io::Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "wav")
            && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
        {
            out.insert(stem.to_string());
        }
    }
    Ok(out)
}

/// Checks flow `text` (read from `file`, which names it in messages) against the prompt names
/// `prompts` found in `prompt_dir`.
pub fn check_source(
    file: &Path,
    text: &str,
    prompt_dir: &Path,
    prompts: &BTreeSet<String>,
) -> Result<Flow, Diagnostics> {
    build(file, text, prompt_dir, prompts, true)
}

pub(crate) fn build(
    file: &Path,
    text: &str,
    prompt_dir: &Path,
    prompts: &BTreeSet<String>,
    check_loops: bool,
) -> Result<Flow, Diagnostics> {
    let mut sink = Sink::new(file, text);
    let Some(raw) = parse(text, &mut sink) else {
        return Err(sink.finish());
    };
    let names_ok = check_names(&raw, &mut sink);
    check_prompts(&raw, prompt_dir, prompts, &mut sink);
    check_vars(&raw, &mut sink);
    // Graph checks need every node whole; a node with errors would look like a dead end.
    let all_parsed = raw.nodes.iter().all(|n| n.node.is_some());
    if names_ok
        && all_parsed
        && let Some(start) = &raw.start
    {
        check_reachable(&raw, &start.name, &mut sink);
        if check_loops {
            check_loops_wait(&raw, &mut sink);
        }
    }
    if sink.has_errors() {
        return Err(sink.finish());
    }
    let warnings = sink.finish().0;
    let RawFlow { name, start, nodes } = raw;
    let (Some(start), true) = (start, nodes.iter().all(|n| n.node.is_some())) else {
        // Unreachable: a missing start or a node with errors always reported an error above.
        return Err(Diagnostics(warnings));
    };
    let nodes = nodes
        .into_iter()
        .filter_map(|n| {
            n.node.map(|node| NodeDef {
                name: n.name,
                span: n.span,
                node,
            })
        })
        .collect();
    let name = name.unwrap_or_else(|| {
        file.file_stem()
            .map_or("flow".into(), |s| s.to_string_lossy().into_owned())
    });
    Ok(Flow::new(name, file.to_path_buf(), start, nodes, warnings))
}

/// Every `next`/`goto`/... and `start` names an existing node.
fn check_names(raw: &RawFlow, sink: &mut Sink<'_>) -> bool {
    let names: Vec<&str> = raw.nodes.iter().map(|n| n.name.as_str()).collect();
    let hint = |missing: &str| match did_you_mean(missing, names.iter().copied()) {
        Some(s) => format!("did you mean `{s}`?"),
        None => format!(
            "define it as [nodes.{missing}], or use one of: {}",
            names.join(", ")
        ),
    };
    let mut ok = true;
    if let Some(start) = &raw.start
        && !names.contains(&start.name.as_str())
    {
        ok = false;
        sink.error(
            &start.span,
            format!("`start` is `{}`, which does not exist", start.name),
            Some(hint(&start.name)),
        );
    }
    for raw_node in &raw.nodes {
        let Some(node) = &raw_node.node else { continue };
        for edge in node.edges() {
            if !names.contains(&edge.target.name.as_str()) {
                ok = false;
                sink.error(
                    &edge.target.span,
                    format!(
                        "node `{}` goes to `{}`, which does not exist",
                        raw_node.name, edge.target.name
                    ),
                    Some(hint(&edge.target.name)),
                );
            }
        }
    }
    ok
}

fn check_prompts(raw: &RawFlow, dir: &Path, prompts: &BTreeSet<String>, sink: &mut Sink<'_>) {
    for raw_node in &raw.nodes {
        let Some(node) = &raw_node.node else { continue };
        for p in node.prompts() {
            let safe = !p.name.is_empty()
                && p.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !safe {
                sink.error(
                    &p.span,
                    format!("prompt name `{}` is not a plain file name", p.name),
                    Some("use letters, digits, `_` and `-`: the name of prompts/NAME.wav without `.wav`".into()),
                );
                continue;
            }
            if prompts.contains(&p.name) {
                continue;
            }
            let file = dir.join(format!("{}.wav", p.name));
            let hint = match did_you_mean(&p.name, prompts.iter().map(String::as_str)) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!(
                    "add a line `{}|TEXT` to {} and run prompts/gen.sh, or record the WAV (8 kHz mono 16-bit)",
                    p.name,
                    dir.join("prompts.txt").display()
                ),
            };
            sink.error(
                &p.span,
                format!("prompt `{}` has no file {}", p.name, file.display()),
                Some(hint),
            );
        }
    }
}

/// Warns about `var.NAME` conditions on variables no node ever sets (always empty: a typo).
fn check_vars(raw: &RawFlow, sink: &mut Sink<'_>) {
    let mut set: BTreeSet<&str> = BUILTIN_VARS.iter().copied().collect();
    for n in raw.nodes.iter().filter_map(|n| n.node.as_ref()) {
        match n {
            super::Node::Set(s) => set.extend(s.vars.iter().map(|(k, _, _)| k.as_str())),
            super::Node::Gather(g) => set.extend(g.store.as_deref()),
            _ => {}
        }
    }
    for n in raw.nodes.iter().filter_map(|n| n.node.as_ref()) {
        if let super::Node::Play(p) = n
            && let Some((var, span)) = &p.prompt_var
            && !set.contains(var.as_str())
        {
            let hint = match did_you_mean(var, set.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => "`incident_prompt` names the incident announcement; other variables \
                         come from a `set` node or a gather's `store`"
                    .into(),
            };
            sink.error(
                span,
                format!("`prompt_var` names `{var}`, which no node sets, so it would play nothing"),
                Some(hint),
            );
        }
    }
    for n in raw.nodes.iter().filter_map(|n| n.node.as_ref()) {
        let super::Node::Branch(b) = n else { continue };
        for case in &b.cases {
            for (var, offset) in case.cond.vars_read() {
                if set.contains(var) {
                    continue;
                }
                // The case's span starts at its `{`; point at the `if` string when we can.
                let at = case.span.start;
                let hint = match did_you_mean(var, set.iter().copied()) {
                    Some(s) => format!("did you mean `var.{s}`?"),
                    None => "set it with a `set` node or a gather's `store`".into(),
                };
                let _ = offset;
                sink.warning(
                    &(at..at),
                    format!(
                        "condition reads `var.{var}`, which no node sets, so it is always empty"
                    ),
                    Some(hint),
                );
            }
        }
    }
}

fn successors(raw: &RawFlow) -> BTreeMap<&str, Vec<&str>> {
    raw.nodes
        .iter()
        .map(|n| {
            let next = n.node.as_ref().map_or(Vec::new(), |node| {
                node.edges()
                    .iter()
                    .map(|e| e.target.name.as_str())
                    .collect()
            });
            (n.name.as_str(), next)
        })
        .collect()
}

fn check_reachable(raw: &RawFlow, start: &str, sink: &mut Sink<'_>) {
    let succ = successors(raw);
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut todo = vec![start];
    while let Some(n) = todo.pop() {
        if seen.insert(n) {
            todo.extend(succ.get(n).into_iter().flatten().copied());
        }
    }
    for n in raw.nodes.iter().filter(|n| !seen.contains(n.name.as_str())) {
        sink.error(
            &n.span,
            format!(
                "node `{}` is never reached from `start` (`{start}`)",
                n.name
            ),
            Some(
                "remove it, or send a `next`, `goto`, `else`, `digits` or `on_*` key to it".into(),
            ),
        );
    }
}

/// Cycles made only of nodes that do not take input (everything but gather, record, dial)
/// would spin forever: report each such cycle once, at its first node in the file.
fn check_loops_wait(raw: &RawFlow, sink: &mut Sink<'_>) {
    let spinning: BTreeSet<&str> = raw
        .nodes
        .iter()
        .filter(|n| n.node.as_ref().is_some_and(|node| !node.takes_input()))
        .map(|n| n.name.as_str())
        .collect();
    let succ: BTreeMap<&str, Vec<&str>> = successors(raw)
        .into_iter()
        .filter(|(n, _)| spinning.contains(n))
        .map(|(n, next)| {
            (
                n,
                next.into_iter().filter(|m| spinning.contains(m)).collect(),
            )
        })
        .collect();
    let mut reported: BTreeSet<&str> = BTreeSet::new();
    for n in raw.nodes.iter().map(|n| n.name.as_str()) {
        if reported.contains(n) || !spinning.contains(n) {
            continue;
        }
        let Some(cycle) = shortest_cycle(&succ, n) else {
            continue;
        };
        reported.extend(cycle.iter().copied());
        let Some(at) = raw
            .nodes
            .iter()
            .find(|r| r.name == n)
            .map(|r| r.span.clone())
        else {
            continue;
        };
        let path = cycle
            .iter()
            .chain(std::iter::once(&n))
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(" -> ");
        sink.error(
            &at,
            format!("nodes {path} loop forever without waiting for the caller"),
            Some(
                "put a `gather` (or `record`, `dial`) in the loop, or leave it towards a `hangup`"
                    .into(),
            ),
        );
    }
}

/// The shortest path `from` -> ... -> back to `from` (without repeating `from`), by BFS.
fn shortest_cycle<'a>(
    succ: &BTreeMap<&'a str, Vec<&'a str>>,
    from: &'a str,
) -> Option<Vec<&'a str>> {
    let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([from]);
    while let Some(n) = queue.pop_front() {
        for &m in succ.get(n).into_iter().flatten() {
            if m == from {
                let mut path = vec![n];
                let mut cur = n;
                while cur != from {
                    cur = parent.get(cur)?;
                    path.push(cur);
                }
                path.reverse();
                return Some(path);
            }
            if !parent.contains_key(m) {
                parent.insert(m, n);
                queue.push_back(m);
            }
        }
    }
    None
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
