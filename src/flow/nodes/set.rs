//! `set`: store call variables (recorded with the call, sent with webhooks, tested with
//! `var.NAME == "value"` in branches).
//!
//! ```toml
//! [nodes.agree]
//! type = "set"
//! vars = { agreed = "true" }
//! next = "ring_desk"
//! ```

use crate::flow::diag::Span;
use crate::flow::model::{Edge, Target};
use crate::flow::parse::Reader;
use crate::flow::run::{BUILTIN_VARS, Cx, Step};

#[derive(Clone, Debug)]
pub struct SetVars {
    /// (name, value, where the name was written), in file order.
    pub vars: Vec<(String, String, Span)>,
    pub next: Target,
}

pub(crate) fn parse(r: &mut Reader<'_, '_>) -> Option<SetVars> {
    if !r.has("vars") {
        r.missing("vars", "add `vars = { name = \"value\" }`");
    }
    let table = r.string_table("vars").unwrap_or_default();
    let mut vars = Vec::new();
    for (name, span, value, _) in table {
        if BUILTIN_VARS.contains(&name.as_str()) {
            let msg = format!("`{name}` is a built-in variable and cannot be set");
            r.error(
                &span,
                msg,
                Some(format!(
                    "pick another name; built-ins: {}",
                    BUILTIN_VARS.join(", ")
                )),
            );
        } else if !super::is_var_name(&name) {
            let msg = format!("`{name}` is not a variable name");
            r.error(
                &span,
                msg,
                Some("use letters, digits and `_`, starting with a letter".into()),
            );
        }
        vars.push((name, value, span));
    }
    let next = r.required_target(
        "next",
        "add `next = \"NODE\"`: where the call goes after setting",
    );
    Some(SetVars { vars, next: next? })
}

impl SetVars {
    pub fn edges(&self) -> Vec<Edge<'_>> {
        vec![super::edge("next", &self.next)]
    }

    pub(crate) fn enter(&self, cx: &mut Cx<'_>) -> Step {
        for (name, value, _) in &self.vars {
            cx.vars.insert(name.clone(), value.clone());
        }
        Step::Goto(self.next.name.clone())
    }
}
