//! Branch conditions: a tiny language an admin can read aloud.
//!
//! ```text
//! cond    := or
//! or      := and ("or" and)*
//! and     := unary ("and" unary)*
//! unary   := "not" unary | "(" cond ")" | atom
//! atom    := FACT                                   open, holiday, caller.repeat, ...
//!          | TEXT ("==" | "!=" | "matches") STRING  caller, called, digits, var.NAME
//!          | "attempts" ("==" | "!=" | "<" | "<=" | ">" | ">=") INTEGER
//! ```
//!
//! `matches` is a glob: `*` any run of characters, `?` one character (`caller matches "+1555*"`).
//! Facts come from the [`FACTS`](super::facts::FACTS) registry; text subjects read call variables.
//! Parsing happens once, at check time, so a typo is an error with a column, never a silent
//! `false` during a call.

use std::collections::BTreeMap;

use super::diag::did_you_mean;
use super::facts::{self, FactDef, Facts};

/// A parsed condition.
#[derive(Clone, Debug)]
pub enum Cond {
    Fact(&'static FactDef),
    Not(Box<Cond>),
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Text {
        subject: TextSubject,
        op: TextOp,
        value: String,
    },
    Attempts {
        op: NumOp,
        value: i64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TextSubject {
    Caller,
    Called,
    Digits,
    /// `var.NAME`, with the byte offset of NAME in the condition (for "never set" warnings).
    Var {
        name: String,
        offset: usize,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextOp {
    Eq,
    Ne,
    Matches,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// Why a condition did not parse; `offset` is a byte offset into the condition text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CondError {
    pub offset: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl Cond {
    pub fn parse(text: &str) -> Result<Cond, CondError> {
        let tokens = lex(text)?;
        let mut p = Parser {
            tokens,
            pos: 0,
            end: text.len(),
        };
        if p.tokens.is_empty() {
            return Err(CondError {
                offset: 0,
                message: "empty condition".into(),
                hint: Some(format!(
                    "name a fact such as `open`; known facts: {}",
                    facts::known_list()
                )),
            });
        }
        let cond = p.or()?;
        if let Some(t) = p.peek() {
            return Err(CondError {
                offset: t.offset,
                message: format!("unexpected `{}` after a complete condition", t.text),
                hint: Some("join conditions with `and` or `or`".into()),
            });
        }
        Ok(cond)
    }

    /// Evaluates against the call's facts and variables (`caller`, `called`, `digits`,
    /// `attempts` are variables the interpreter keeps up to date).
    pub fn eval(&self, facts: &Facts, vars: &BTreeMap<String, String>) -> bool {
        match self {
            Cond::Fact(def) => (def.get)(facts),
            Cond::Not(c) => !c.eval(facts, vars),
            Cond::And(a, b) => a.eval(facts, vars) && b.eval(facts, vars),
            Cond::Or(a, b) => a.eval(facts, vars) || b.eval(facts, vars),
            Cond::Text { subject, op, value } => {
                let name = match subject {
                    TextSubject::Caller => "caller",
                    TextSubject::Called => "called",
                    TextSubject::Digits => "digits",
                    TextSubject::Var { name, .. } => name,
                };
                let actual = vars.get(name).map_or("", String::as_str);
                match op {
                    TextOp::Eq => actual == value,
                    TextOp::Ne => actual != value,
                    TextOp::Matches => glob(value, actual),
                }
            }
            Cond::Attempts { op, value } => {
                let n: i64 = vars
                    .get("attempts")
                    .and_then(|a| a.parse().ok())
                    .unwrap_or(0);
                match op {
                    NumOp::Eq => n == *value,
                    NumOp::Ne => n != *value,
                    NumOp::Lt => n < *value,
                    NumOp::Le => n <= *value,
                    NumOp::Gt => n > *value,
                    NumOp::Ge => n >= *value,
                }
            }
        }
    }

    /// Every `var.NAME` the condition reads, with NAME's offset.
    pub fn vars_read(&self) -> Vec<(&str, usize)> {
        let mut out = Vec::new();
        self.collect_vars(&mut out);
        out
    }

    fn collect_vars<'a>(&'a self, out: &mut Vec<(&'a str, usize)>) {
        match self {
            Cond::Not(c) => c.collect_vars(out),
            Cond::And(a, b) | Cond::Or(a, b) => {
                a.collect_vars(out);
                b.collect_vars(out);
            }
            Cond::Text {
                subject: TextSubject::Var { name, offset },
                ..
            } => out.push((name, *offset)),
            _ => {}
        }
    }
}

/// Glob match over characters: `*` any run (also empty), `?` exactly one.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matcher with one backtrack point for the last `*`: linear enough for numbers.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[derive(Clone, Debug, PartialEq)]
enum Kind {
    Word,
    Str(String),
    Int(i64),
    Op,
    Open,
    Close,
}

#[derive(Clone, Debug)]
struct Token {
    kind: Kind,
    text: String,
    offset: usize,
}

fn lex(text: &str) -> Result<Vec<Token>, CondError> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        let take_while = |mut j: usize, f: &dyn Fn(char) -> bool| {
            while j < chars.len() && f(chars[j].1) {
                j += 1;
            }
            j
        };
        let end_of = |j: usize| chars.get(j).map_or(text.len(), |(o, _)| *o);
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' || c == ')' {
            let kind = if c == '(' { Kind::Open } else { Kind::Close };
            out.push(Token {
                kind,
                text: c.to_string(),
                offset: at,
            });
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let j = take_while(i, &|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
            out.push(Token {
                kind: Kind::Word,
                text: text[at..end_of(j)].to_string(),
                offset: at,
            });
            i = j;
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(|(_, d)| d.is_ascii_digit()))
        {
            let j = take_while(i + 1, &|c| c.is_ascii_digit());
            let raw = &text[at..end_of(j)];
            let n = raw.parse().map_err(|_| CondError {
                offset: at,
                message: format!("number `{raw}` is too large"),
                hint: None,
            })?;
            out.push(Token {
                kind: Kind::Int(n),
                text: raw.to_string(),
                offset: at,
            });
            i = j;
        } else if c == '"' || c == '\'' {
            let j = take_while(i + 1, &|d| d != c);
            if j >= chars.len() {
                return Err(CondError {
                    offset: at,
                    message: "text in a condition is missing its closing quote".into(),
                    hint: Some(format!("end it with {c}")),
                });
            }
            let value = text[end_of(i + 1)..end_of(j)].to_string();
            out.push(Token {
                kind: Kind::Str(value),
                text: text[at..end_of(j + 1)].to_string(),
                offset: at,
            });
            i = j + 1;
        } else if "=!<>".contains(c) {
            let j = take_while(i, &|c| "=!<>".contains(c));
            out.push(Token {
                kind: Kind::Op,
                text: text[at..end_of(j)].to_string(),
                offset: at,
            });
            i = j;
        } else {
            return Err(CondError {
                offset: at,
                message: format!("unexpected character `{c}` in condition"),
                hint: Some("conditions use names, \"text\", numbers, ==, !=, <, <=, >, >=, matches, not, and, or, ( )".into()),
            });
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    end: usize,
}

fn comparisons_hint() -> String {
    format!(
        "known facts: {}; comparisons: caller matches \"+1555*\", called == \"...\", digits == \"5\", attempts >= 2, var.NAME == \"value\"",
        facts::known_list()
    )
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn at_word(&self, w: &str) -> bool {
        self.peek()
            .is_some_and(|t| t.kind == Kind::Word && t.text == w)
    }

    fn or(&mut self) -> Result<Cond, CondError> {
        let mut left = self.and()?;
        while self.at_word("or") {
            self.pos += 1;
            let right = self.and()?;
            left = Cond::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Cond, CondError> {
        let mut left = self.unary()?;
        while self.at_word("and") {
            self.pos += 1;
            let right = self.unary()?;
            left = Cond::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Cond, CondError> {
        let end = self.end;
        let Some(t) = self.next() else {
            return Err(CondError {
                offset: end,
                message: "condition ends too early".into(),
                hint: Some(comparisons_hint()),
            });
        };
        match t.kind {
            Kind::Word if t.text == "not" => Ok(Cond::Not(Box::new(self.unary()?))),
            Kind::Open => {
                let inner = self.or()?;
                match self.next() {
                    Some(Token {
                        kind: Kind::Close, ..
                    }) => Ok(inner),
                    other => Err(CondError {
                        offset: other.map_or(end, |t| t.offset),
                        message: "`(` is never closed".into(),
                        hint: Some(format!("add `)` (the `(` is at column {})", t.offset + 1)),
                    }),
                }
            }
            Kind::Word if !["and", "or", "matches"].contains(&t.text.as_str()) => self.atom(t),
            _ => Err(CondError {
                offset: t.offset,
                message: format!("expected a fact or comparison, found `{}`", t.text),
                hint: Some(comparisons_hint()),
            }),
        }
    }

    fn atom(&mut self, word: Token) -> Result<Cond, CondError> {
        let subject = match word.text.as_str() {
            "caller" => Some(TextSubject::Caller),
            "called" => Some(TextSubject::Called),
            "digits" => Some(TextSubject::Digits),
            "attempts" => return self.attempts(word),
            name => name.strip_prefix("var.").map(|v| TextSubject::Var {
                name: v.to_string(),
                offset: word.offset + 4,
            }),
        };
        let Some(subject) = subject else {
            if let Some(def) = facts::lookup(&word.text) {
                if let Some(op) = self
                    .peek()
                    .filter(|t| t.kind == Kind::Op || t.text == "matches")
                {
                    return Err(CondError {
                        offset: op.offset,
                        message: format!("`{}` is a yes/no fact and cannot be compared", word.text),
                        hint: Some(format!(
                            "use it alone (`{0}`) or negated (`not {0}`)",
                            word.text
                        )),
                    });
                }
                return Ok(Cond::Fact(def));
            }
            let names = facts::FACTS
                .iter()
                .map(|f| f.name)
                .chain(["caller", "called", "digits", "attempts"]);
            let hint = match did_you_mean(&word.text, names) {
                Some(s) => format!("did you mean `{s}`? {}", comparisons_hint()),
                None => comparisons_hint(),
            };
            return Err(CondError {
                offset: word.offset,
                message: format!("unknown condition `{}`", word.text),
                hint: Some(hint),
            });
        };
        if let TextSubject::Var { name, .. } = &subject
            && (name.is_empty() || name.contains('.'))
        {
            return Err(CondError {
                offset: word.offset,
                message: format!("`{}` is not a variable name", word.text),
                hint: Some("write `var.NAME` with NAME of letters, digits and `_`".into()),
            });
        }
        let op = match self.next() {
            Some(t) if t.text == "==" => TextOp::Eq,
            Some(t) if t.text == "!=" => TextOp::Ne,
            Some(t) if t.text == "matches" => TextOp::Matches,
            other => {
                return Err(CondError {
                    offset: other.as_ref().map_or(self.end, |t| t.offset),
                    message: format!(
                        "`{}` must be compared: expected ==, != or matches",
                        word.text
                    ),
                    hint: Some(format!("for example `{} == \"5\"`", word.text)),
                });
            }
        };
        match self.next() {
            Some(Token {
                kind: Kind::Str(value),
                ..
            }) => Ok(Cond::Text { subject, op, value }),
            other => Err(CondError {
                offset: other.as_ref().map_or(self.end, |t| t.offset),
                message: format!("`{}` compares with quoted text", word.text),
                hint: Some(format!("for example `{} == \"5\"`", word.text)),
            }),
        }
    }

    fn attempts(&mut self, word: Token) -> Result<Cond, CondError> {
        let op = match self.next() {
            Some(t) if t.kind == Kind::Op => match t.text.as_str() {
                "==" => NumOp::Eq,
                "!=" => NumOp::Ne,
                "<" => NumOp::Lt,
                "<=" => NumOp::Le,
                ">" => NumOp::Gt,
                ">=" => NumOp::Ge,
                other => {
                    return Err(CondError {
                        offset: t.offset,
                        message: format!("unknown operator `{other}`"),
                        hint: Some("use ==, !=, <, <=, > or >=".into()),
                    });
                }
            },
            other => {
                return Err(CondError {
                    offset: other.as_ref().map_or(self.end, |t| t.offset),
                    message: "`attempts` is a number: expected ==, !=, <, <=, > or >=".into(),
                    hint: Some("for example `attempts >= 2`".into()),
                });
            }
        };
        match self.next() {
            Some(Token {
                kind: Kind::Int(value),
                ..
            }) => Ok(Cond::Attempts { op, value }),
            other => Err(CondError {
                offset: other.as_ref().map_or(self.end, |t| t.offset),
                message: format!("`{}` compares with a whole number", word.text),
                hint: Some("for example `attempts >= 2`".into()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn eval(text: &str, facts: &Facts, v: &BTreeMap<String, String>) -> bool {
        Cond::parse(text).unwrap().eval(facts, v)
    }

    #[test]
    fn facts_and_boolean_operators() {
        let f = Facts {
            open: true,
            ..Facts::default()
        };
        let v = vars(&[]);
        assert!(eval("open", &f, &v));
        assert!(!eval("holiday", &f, &v));
        assert!(eval("open and not holiday", &f, &v));
        assert!(eval("holiday or open", &f, &v));
        assert!(!eval("not (open or holiday)", &f, &v));
        // `and` binds tighter than `or`.
        assert!(eval("open or holiday and holiday", &f, &v));
        assert!(!eval("(open or holiday) and holiday", &f, &v));
    }

    #[test]
    fn comparisons() {
        let f = Facts::default();
        let v = vars(&[
            ("caller", "+15551234"),
            ("digits", "5"),
            ("attempts", "2"),
            ("ticket", "42"),
        ]);
        assert!(eval("caller matches \"+1555*\"", &f, &v));
        assert!(!eval("caller matches '+1666*'", &f, &v));
        assert!(eval("digits == \"5\"", &f, &v));
        assert!(eval("digits != \"6\"", &f, &v));
        assert!(eval(
            "attempts >= 2 and attempts < 3 and attempts == 2",
            &f,
            &v
        ));
        assert!(eval("var.ticket == \"42\"", &f, &v));
        assert!(eval("var.missing == \"\"", &f, &v));
        assert!(eval("called == \"\"", &f, &v));
    }

    #[test]
    fn globs() {
        assert!(glob("+1555*", "+15550000"));
        assert!(glob("*", ""));
        assert!(glob("1?3", "123"));
        assert!(!glob("1?3", "13"));
        assert!(glob("*0*0", "1000"));
        assert!(!glob("12", "123"));
    }

    #[test]
    fn errors_point_at_the_problem() {
        let e = Cond::parse("opne").unwrap_err();
        assert_eq!(
            (e.offset, e.message.as_str()),
            (0, "unknown condition `opne`")
        );
        assert!(
            e.hint
                .unwrap()
                .starts_with("did you mean `open`? known facts: open, holiday,")
        );
        let e = Cond::parse("open and").unwrap_err();
        assert_eq!(
            (e.offset, e.message.as_str()),
            (8, "condition ends too early")
        );
        let e = Cond::parse("attempts => 2").unwrap_err();
        assert_eq!((e.offset, e.message.as_str()), (9, "unknown operator `=>`"));
        let e = Cond::parse("digits == 5").unwrap_err();
        assert_eq!(e.message, "`digits` compares with quoted text");
        let e = Cond::parse("open == \"x\"").unwrap_err();
        assert_eq!(e.message, "`open` is a yes/no fact and cannot be compared");
        let e = Cond::parse("(open").unwrap_err();
        assert_eq!(e.message, "`(` is never closed");
        let e = Cond::parse("open holiday").unwrap_err();
        assert_eq!(
            (e.offset, e.message.as_str()),
            (5, "unexpected `holiday` after a complete condition")
        );
        let e = Cond::parse("caller matches \"+1").unwrap_err();
        assert_eq!(
            e.message,
            "text in a condition is missing its closing quote"
        );
        assert!(Cond::parse("").is_err());
        assert!(Cond::parse("open & holiday").is_err());
    }

    #[test]
    fn reports_vars_read() {
        let c = Cond::parse("var.a == \"1\" or not var.bb == \"2\"").unwrap();
        assert_eq!(c.vars_read(), [("a", 4), ("bb", 24)]);
    }
}
