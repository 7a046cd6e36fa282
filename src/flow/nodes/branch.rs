//! `branch`: pick the next node by condition (Asterisk's `GotoIf`/`GotoIfTime`). Cases are tried
//! in order; the first true one wins, `else` catches the rest. See `cond.rs` for the language.
//!
//! ```toml
//! [nodes.hours]
//! type = "branch"
//! cases = [ { if = "open", goto = "open_line" }, { if = "holiday", goto = "greeting" } ]
//! else = "greeting"
//! ```

use crate::flow::cond::Cond;
use crate::flow::diag::Span;
use crate::flow::model::{Edge, Target};
use crate::flow::parse::Reader;
use crate::flow::run::{Cx, Step};

#[derive(Clone, Debug)]
pub struct Case {
    pub cond: Cond,
    /// The condition as written (for graphs).
    pub text: String,
    pub span: Span,
    pub goto: Target,
}

#[derive(Clone, Debug)]
pub struct Branch {
    pub cases: Vec<Case>,
    pub otherwise: Target,
}

pub(crate) fn parse(r: &mut Reader<'_, '_>) -> Option<Branch> {
    if !r.has("cases") {
        r.missing(
            "cases",
            "add `cases = [ { if = \"open\", goto = \"NODE\" } ]`",
        );
    }
    let tables = r.table_list("cases").unwrap_or_default();
    let mut cases = Vec::new();
    for (at, table) in tables {
        let mut cond = None;
        let mut goto = None;
        let mut text = String::new();
        for (k, v) in table.iter() {
            let value = v.get_ref().as_str().map(str::to_string);
            match (k.get_ref().as_ref(), value) {
                ("if", Some(s)) => {
                    cond = r.condition(&s, &v.span());
                    text = s;
                }
                ("goto", Some(s)) => {
                    goto = Some(Target {
                        name: s,
                        span: v.span(),
                    })
                }
                ("if" | "goto", None) => {
                    let msg = format!(
                        "`{}` in a case of node `{}` must be a string",
                        k.get_ref(),
                        r.node
                    );
                    r.error(&v.span(), msg, None);
                }
                (other, _) => {
                    let msg = format!("unknown key `{other}` in a case of node `{}`", r.node);
                    r.error(
                        &k.span(),
                        msg,
                        Some("a case is { if = \"CONDITION\", goto = \"NODE\" }".into()),
                    );
                }
            }
        }
        for (key, present) in [
            ("if", table.iter().any(|(k, _)| k.get_ref() == "if")),
            ("goto", goto.is_some()),
        ] {
            if !present {
                let msg = format!("a case of node `{}` is missing `{key}`", r.node);
                r.error(
                    &at,
                    msg,
                    Some("a case is { if = \"CONDITION\", goto = \"NODE\" }".into()),
                );
            }
        }
        if let (Some(cond), Some(goto)) = (cond, goto) {
            cases.push(Case {
                cond,
                text,
                span: at,
                goto,
            });
        }
    }
    let otherwise = r.required_target(
        "else",
        "add `else = \"NODE\"`: where the call goes when no case is true",
    );
    Some(Branch {
        cases,
        otherwise: otherwise?,
    })
}

impl Branch {
    pub fn edges(&self) -> Vec<Edge<'_>> {
        let mut out: Vec<Edge<'_>> = self
            .cases
            .iter()
            .map(|c| super::edge(c.text.clone(), &c.goto))
            .collect();
        out.push(super::edge("else", &self.otherwise));
        out
    }

    pub(crate) fn enter(&self, cx: &mut Cx<'_>) -> Step {
        let hit = self.cases.iter().find(|c| c.cond.eval(cx.facts, cx.vars));
        let target = hit.map_or(&self.otherwise, |c| &c.goto);
        Step::Goto(target.name.clone())
    }
}
