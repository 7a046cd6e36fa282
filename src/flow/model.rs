//! The validated, immutable form of a call flow.
//!
//! A [`Flow`] only comes out of [`check`](super::check): every node it names exists, every node is
//! reachable, prompts have files and no loop spins without the caller. The interpreter therefore
//! never meets a dangling name, and the call shell can share one `Arc<Flow>` across calls.
//! Spans stay in the model so later stages (graph, warnings) can still point into the file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::diag::{Diagnostic, Span};
use super::nodes::{Branch, Dial, Gather, Goto, Hangup, Play, Record, SetVars, Webhook};

/// A reference to another node (`next = "menu"`), with where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub span: Span,
}

/// A prompt name (`prompts/NAME.wav`), with where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompt {
    pub name: String,
    pub span: Span,
}

/// One way out of a node, labelled for graphs and loop reports (`next`, `"5"`, `no_answer`).
#[derive(Clone, Debug)]
pub struct Edge<'a> {
    pub label: String,
    pub target: &'a Target,
}

/// A node of any type.
#[derive(Clone, Debug)]
pub enum Node {
    Play(Play),
    Gather(Gather),
    Branch(Branch),
    Set(SetVars),
    Goto(Goto),
    Hangup(Hangup),
    Dial(Dial),
    Record(Record),
    Webhook(Webhook),
}

/// Every node type, as written in `type = "..."`.
pub const NODE_TYPES: &[&str] = &[
    "play", "gather", "branch", "set", "goto", "hangup", "dial", "record", "webhook",
];

impl Node {
    pub fn type_name(&self) -> &'static str {
        match self {
            Node::Play(_) => "play",
            Node::Gather(_) => "gather",
            Node::Branch(_) => "branch",
            Node::Set(_) => "set",
            Node::Goto(_) => "goto",
            Node::Hangup(_) => "hangup",
            Node::Dial(_) => "dial",
            Node::Record(_) => "record",
            Node::Webhook(_) => "webhook",
        }
    }

    /// Where the node can go next, in the order the file lists them.
    pub fn edges(&self) -> Vec<Edge<'_>> {
        match self {
            Node::Play(n) => n.edges(),
            Node::Gather(n) => n.edges(),
            Node::Branch(n) => n.edges(),
            Node::Set(n) => n.edges(),
            Node::Goto(n) => n.edges(),
            Node::Hangup(_) => Vec::new(),
            Node::Dial(n) => n.edges(),
            Node::Record(n) => n.edges(),
            Node::Webhook(n) => n.edges(),
        }
    }

    /// Every prompt the node may play.
    pub fn prompts(&self) -> Vec<&Prompt> {
        match self {
            Node::Play(n) => n.prompts.iter().collect(),
            Node::Gather(n) => n.all_prompts(),
            Node::Hangup(n) => n.prompts.iter().collect(),
            Node::Dial(n) => n.whisper.iter().collect(),
            Node::Record(n) => n.prompt.iter().collect(),
            Node::Branch(_) | Node::Set(_) | Node::Goto(_) | Node::Webhook(_) => Vec::new(),
        }
    }

    /// Whether the node waits on the caller (or on people), which is what makes a cycle
    /// through it a legitimate retry loop rather than a spin.
    pub fn takes_input(&self) -> bool {
        matches!(self, Node::Gather(_) | Node::Record(_) | Node::Dial(_))
    }
}

/// A named node and where its name was written.
#[derive(Clone, Debug)]
pub struct NodeDef {
    pub name: String,
    pub span: Span,
    pub node: Node,
}

/// A checked call flow.
#[derive(Clone, Debug)]
pub struct Flow {
    /// `name = ...`, or the file stem.
    pub name: String,
    /// The file it came from (for messages).
    pub file: PathBuf,
    pub start: Target,
    /// In file order.
    pub nodes: Vec<NodeDef>,
    /// Problems that do not stop the flow from running.
    pub warnings: Vec<Diagnostic>,
    index: BTreeMap<String, usize>,
}

impl Flow {
    pub(crate) fn new(
        name: String,
        file: PathBuf,
        start: Target,
        nodes: Vec<NodeDef>,
        warnings: Vec<Diagnostic>,
    ) -> Flow {
        let index = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.clone(), i))
            .collect();
        Flow {
            name,
            file,
            start,
            nodes,
            warnings,
            index,
        }
    }

    pub(crate) fn index_of(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    pub fn node(&self, name: &str) -> Option<&NodeDef> {
        self.index.get(name).map(|i| &self.nodes[*i])
    }

    /// Each `dial` node with the desk groups it rings (checked against the config at start).
    pub fn dial_targets(&self) -> Vec<(&str, &[String])> {
        self.nodes
            .iter()
            .filter_map(|n| match &n.node {
                Node::Dial(d) => Some((n.name.as_str(), d.targets.as_slice())),
                _ => None,
            })
            .collect()
    }
}
