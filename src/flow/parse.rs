//! From TOML text to nodes, keeping the byte span of every key and value.
//!
//! We read `toml`'s spanned document tree ([`DeTable`]) by hand instead of deriving
//! `Deserialize`: a serde-tagged enum (`type = "gather"`) buffers its content and loses spans,
//! and hand reading lets every message name the node, the key and the fix. Node files
//! (`nodes/*.rs`) describe their own keys through [`Reader`]; this file knows only the top level.

use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::cond::Cond;
use super::diag::{Sink, Span, did_you_mean};
use super::duration::parse_duration;
use super::model::{NODE_TYPES, Node, Prompt, Target};
use super::nodes;

/// A node as parsed: `node` is `None` when its keys had errors (already reported), so that
/// references to it still resolve and one mistake yields one message.
pub(crate) struct RawNode {
    pub name: String,
    pub span: Span,
    pub node: Option<Node>,
}

pub(crate) struct RawFlow {
    pub name: Option<String>,
    pub start: Option<Target>,
    pub nodes: Vec<RawNode>,
}

const TOP_KEYS: &[&str] = &["name", "start", "nodes"];

/// Parses `text`; every problem goes to `sink`. `None` only for TOML syntax errors.
pub(crate) fn parse<'s>(text: &'s str, sink: &mut Sink<'s>) -> Option<RawFlow> {
    let doc = match DeTable::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let at = e.span().unwrap_or(0..0);
            let message = e.message().trim_end().replace('\n', " ");
            sink.error(&at, format!("invalid TOML: {message}"), None);
            return None;
        }
    };
    let mut flow = RawFlow {
        name: None,
        start: None,
        nodes: Vec::new(),
    };
    let mut entries: Vec<_> = doc.get_ref().iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    let mut saw_nodes = false;
    for (key, value) in entries {
        let key_name: &str = key.get_ref();
        match key_name {
            "name" | "start" => match value.get_ref() {
                DeValue::String(s) => {
                    if key_name == "name" {
                        flow.name = Some(s.to_string());
                    } else {
                        flow.start = Some(Target {
                            name: s.to_string(),
                            span: value.span(),
                        });
                    }
                }
                other => sink.error(
                    &value.span(),
                    format!("`{key_name}` must be a string, not {}", article(other)),
                    None,
                ),
            },
            "nodes" => {
                saw_nodes = true;
                match value.get_ref() {
                    DeValue::Table(t) => parse_nodes(text, t, sink, &mut flow.nodes),
                    other => sink.error(
                        &value.span(),
                        format!("`nodes` must be a table, not {}", article(other)),
                        Some("write each node as its own table: [nodes.menu]".into()),
                    ),
                }
            }
            other => sink.error(
                &key.span(),
                format!("unknown top-level key `{other}`"),
                Some(match did_you_mean(other, TOP_KEYS.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "the top level has `name`, `start` and `[nodes.NAME]` tables".into(),
                }),
            ),
        }
    }
    if flow.start.is_none() {
        sink.error(
            &(0..0),
            "the flow has no `start`",
            Some("add `start = \"NODE\"` at the top, naming the first node".into()),
        );
    }
    if !saw_nodes {
        sink.error(
            &(0..0),
            "the flow has no nodes",
            Some("add nodes as tables: [nodes.greeting] type = \"play\" ...".into()),
        );
    }
    Some(flow)
}

fn parse_nodes<'s>(
    text: &'s str,
    table: &DeTable<'s>,
    sink: &mut Sink<'s>,
    out: &mut Vec<RawNode>,
) {
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    for (key, value) in entries {
        let name = key.get_ref().to_string();
        let span = key.span();
        let DeValue::Table(body) = value.get_ref() else {
            sink.error(
                &value.span(),
                format!(
                    "node `{name}` must be a table, not {}",
                    article(value.get_ref())
                ),
                Some(format!("write it as [nodes.{name}] with a `type` key")),
            );
            out.push(RawNode {
                name,
                span,
                node: None,
            });
            continue;
        };
        let node = parse_node(text, &name, span.clone(), body, sink);
        out.push(RawNode { name, span, node });
    }
}

fn parse_node<'s>(
    text: &'s str,
    name: &str,
    at: Span,
    body: &DeTable<'s>,
    sink: &mut Sink<'s>,
) -> Option<Node> {
    let types = NODE_TYPES.join(", ");
    let Some((_, ty)) = body.iter().find(|(k, _)| k.get_ref() == "type") else {
        sink.error(
            &at,
            format!("node `{name}` has no `type`"),
            Some(format!("add `type = \"...\"`, one of: {types}")),
        );
        return None;
    };
    let DeValue::String(ty_name) = ty.get_ref() else {
        sink.error(
            &ty.span(),
            format!("`type` of node `{name}` must be a string"),
            Some(format!("one of: {types}")),
        );
        return None;
    };
    let Some(kind) = NODE_TYPES.iter().copied().find(|t| *t == ty_name.as_ref()) else {
        let hint = match did_you_mean(ty_name, NODE_TYPES.iter().copied()) {
            Some(s) => format!("did you mean `{s}`? types: {types}"),
            None => format!("types: {types}"),
        };
        sink.error(
            &ty.span(),
            format!("unknown node type `{ty_name}`"),
            Some(hint),
        );
        return None;
    };
    let mut r = Reader {
        text,
        node: name,
        kind,
        at,
        table: body,
        used: vec!["type"],
        sink,
        failed: false,
    };
    let node = match kind {
        "play" => nodes::play::parse(&mut r).map(Node::Play),
        "gather" => nodes::gather::parse(&mut r).map(Node::Gather),
        "branch" => nodes::branch::parse(&mut r).map(Node::Branch),
        "set" => nodes::set::parse(&mut r).map(Node::Set),
        "goto" => nodes::goto::parse(&mut r).map(Node::Goto),
        "hangup" => nodes::hangup::parse(&mut r).map(Node::Hangup),
        "dial" => nodes::dial::parse(&mut r).map(Node::Dial),
        "record" => nodes::record::parse(&mut r).map(Node::Record),
        _ => nodes::webhook::parse(&mut r).map(Node::Webhook),
    };
    r.finish();
    if r.failed { None } else { node }
}

/// "a string", "an integer", ... for type errors.
fn article(v: &DeValue<'_>) -> String {
    let t = v.type_str();
    let a = if t.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{a} {t}")
}

/// Reads one node's keys, reporting missing, mistyped and unknown keys against the node.
pub(crate) struct Reader<'r, 's> {
    text: &'s str,
    pub node: &'r str,
    pub kind: &'static str,
    /// The node name's span, for problems with the node as a whole.
    pub at: Span,
    table: &'r DeTable<'s>,
    used: Vec<&'static str>,
    pub sink: &'r mut Sink<'s>,
    /// Set by any error, so a half-read node is not used.
    failed: bool,
}

type Val<'r, 's> = &'r Spanned<DeValue<'s>>;

impl<'r, 's> Reader<'r, 's> {
    /// Reports a problem with this node.
    pub fn error(&mut self, at: &Span, message: impl Into<String>, hint: Option<String>) {
        self.failed = true;
        self.sink.error(at, message, hint);
    }

    fn get(&mut self, key: &'static str) -> Option<Val<'r, 's>> {
        self.used.push(key);
        self.table
            .iter()
            .find(|(k, _)| k.get_ref() == key)
            .map(|(_, v)| v)
    }

    pub fn has(&self, key: &str) -> bool {
        self.table.iter().any(|(k, _)| k.get_ref() == key)
    }

    /// The span of `key`'s value, if present.
    pub fn span_of(&self, key: &str) -> Option<Span> {
        self.table
            .iter()
            .find(|(k, _)| k.get_ref() == key)
            .map(|(_, v)| v.span())
    }

    pub fn missing(&mut self, key: &str, hint: &str) {
        let at = self.at.clone();
        let msg = format!("node `{}` ({}) is missing `{key}`", self.node, self.kind);
        self.error(&at, msg, Some(hint.to_string()));
    }

    fn wrong_type(&mut self, key: &str, want: &str, v: Val<'r, 's>) {
        let msg = format!(
            "`{key}` in node `{}` must be {want}, not {}",
            self.node,
            article(v.get_ref())
        );
        self.error(&v.span(), msg, None);
    }

    pub fn string(&mut self, key: &'static str) -> Option<(String, Span)> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some((s.to_string(), v.span())),
            _ => {
                self.wrong_type(key, "a string", v);
                None
            }
        }
    }

    pub fn bool(&mut self, key: &'static str) -> Option<bool> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(key, "true or false", v);
                None
            }
        }
    }

    /// A whole number in `range`.
    pub fn int(&mut self, key: &'static str, range: std::ops::RangeInclusive<i64>) -> Option<i64> {
        let v = self.get(key)?;
        let n = match v.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
            _ => {
                self.wrong_type(key, "a whole number", v);
                return None;
            }
        };
        match n.filter(|n| range.contains(n)) {
            Some(n) => Some(n),
            None => {
                let msg = format!(
                    "`{key}` in node `{}` must be between {} and {}",
                    self.node,
                    range.start(),
                    range.end()
                );
                self.error(&v.span(), msg, None);
                None
            }
        }
    }

    /// Byte offset in the file of byte `offset` inside string value at `span`, when the
    /// source spells the string without escapes (otherwise the string's start).
    pub fn offset_in_string(&self, span: &Span, content: &str, offset: usize) -> usize {
        let raw = self.text.get(span.clone()).unwrap_or("");
        for quote in [3, 1] {
            if raw.len() >= 2 * quote && raw.get(quote..raw.len() - quote) == Some(content) {
                return span.start + quote + offset;
            }
        }
        span.start
    }

    pub fn duration(&mut self, key: &'static str) -> Option<Duration> {
        let (s, span) = self.string(key)?;
        match parse_duration(&s) {
            Ok(d) => Some(d),
            Err(e) => {
                let at = self.offset_in_string(&span, &s, e.offset);
                self.error(&(at..at), e.message, Some(e.hint));
                None
            }
        }
    }

    pub fn target(&mut self, key: &'static str) -> Option<Target> {
        self.string(key).map(|(name, span)| Target { name, span })
    }

    pub fn required_target(&mut self, key: &'static str, hint: &str) -> Option<Target> {
        if !self.has(key) {
            self.missing(key, hint);
        }
        self.target(key)
    }

    pub fn condition(&mut self, text: &str, span: &Span) -> Option<Cond> {
        match Cond::parse(text) {
            Ok(c) => Some(c),
            Err(e) => {
                let at = self.offset_in_string(span, text, e.offset);
                self.error(&(at..at), e.message, e.hint);
                None
            }
        }
    }

    /// `prompt = "x"` or `prompts = ["x", "y"]` (not both).
    pub fn prompts(&mut self, required: bool) -> Vec<Prompt> {
        if self.has("prompt") && self.has("prompts") {
            let at = self.span_of("prompts").unwrap_or(self.at.clone());
            let msg = format!("node `{}` has both `prompt` and `prompts`", self.node);
            self.error(
                &at,
                msg,
                Some("keep one: `prompts = [\"a\", \"b\"]` holds several".into()),
            );
        }
        let one = self.string("prompt");
        let list = self.string_list("prompts").unwrap_or_default();
        if let Some((name, span)) = one {
            return vec![Prompt { name, span }];
        }
        if list.is_empty() && required && !self.has("prompt") {
            let hint =
                "add `prompt = \"NAME\"` (plays prompts/NAME.wav) or `prompts = [\"A\", \"B\"]`";
            if self.has("prompts") {
                let at = self.span_of("prompts").unwrap_or(self.at.clone());
                let msg = format!("`prompts` in node `{}` is empty", self.node);
                self.error(&at, msg, Some(hint.into()));
            } else {
                self.missing("prompt", hint);
            }
        }
        list.into_iter()
            .map(|(name, span)| Prompt { name, span })
            .collect()
    }

    /// An optional single prompt under `key`.
    pub fn prompt(&mut self, key: &'static str) -> Option<Prompt> {
        self.string(key).map(|(name, span)| Prompt { name, span })
    }

    pub fn string_list(&mut self, key: &'static str) -> Option<Vec<(String, Span)>> {
        let v = self.get(key)?;
        let DeValue::Array(items) = v.get_ref() else {
            self.wrong_type(key, "a list of strings", v);
            return None;
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(s) => out.push((s.to_string(), item.span())),
                _ => self.wrong_type(key, "a list of strings", item),
            }
        }
        Some(out)
    }

    /// An inline table of strings: `digits = { "5" = "terms" }` -> (key, key span, value, value span).
    pub fn string_table(&mut self, key: &'static str) -> Option<Vec<(String, Span, String, Span)>> {
        let v = self.get(key)?;
        let DeValue::Table(t) = v.get_ref() else {
            self.wrong_type(key, "a table like { \"1\" = \"node\" }", v);
            return None;
        };
        let mut out = Vec::new();
        let mut entries: Vec<_> = t.iter().collect();
        entries.sort_by_key(|(k, _)| k.span().start);
        for (k, val) in entries {
            match val.get_ref() {
                DeValue::String(s) => {
                    out.push((k.get_ref().to_string(), k.span(), s.to_string(), val.span()))
                }
                _ => {
                    let msg = format!(
                        "`{key}.{}` in node `{}` must be a string",
                        k.get_ref(),
                        self.node
                    );
                    self.error(&val.span(), msg, None);
                }
            }
        }
        Some(out)
    }

    /// A list of inline tables (`cases = [ { if = "...", goto = "..." } ]`), each as a
    /// list of (key, key span, value) for the node to read.
    pub fn table_list(&mut self, key: &'static str) -> Option<Vec<(Span, &'r DeTable<'s>)>> {
        let v = self.get(key)?;
        let DeValue::Array(items) = v.get_ref() else {
            self.wrong_type(key, "a list of tables", v);
            return None;
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match item.get_ref() {
                DeValue::Table(t) => out.push((item.span(), t)),
                _ => self.wrong_type(key, "a list of tables", item),
            }
        }
        Some(out)
    }

    /// Reports keys no getter asked for.
    fn finish(&mut self) {
        let unknown: Vec<(String, Span)> = self
            .table
            .iter()
            .filter(|(k, _)| !self.used.contains(&k.get_ref().as_ref()))
            .map(|(k, _)| (k.get_ref().to_string(), k.span()))
            .collect();
        for (key, span) in unknown {
            let used = self.used.clone();
            let hint = match did_you_mean(&key, used.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("a {} node takes: {}", self.kind, used[1..].join(", ")),
            };
            let msg = format!(
                "unknown key `{key}` in node `{}` ({})",
                self.node, self.kind
            );
            self.error(&span, msg, Some(hint));
        }
    }
}
