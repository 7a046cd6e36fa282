//! Every `ivr check` message, exactly as an admin sees it.

use std::collections::BTreeSet;
use std::path::Path;

use super::*;

const PROMPTS: &[&str] = &[
    "hello",
    "press_5",
    "terms",
    "goodbye",
    "no_input",
    "invalid_input",
];

fn run_check(text: &str) -> Result<Flow, Diagnostics> {
    let prompts: BTreeSet<String> = PROMPTS.iter().map(|s| s.to_string()).collect();
    check_source(
        Path::new("callflows/x.toml"),
        text,
        Path::new("prompts"),
        &prompts,
    )
}

/// The rendered diagnostics, one string each.
fn errors(text: &str) -> Vec<String> {
    match run_check(text) {
        Ok(_) => Vec::new(),
        Err(d) => d.iter().map(ToString::to_string).collect(),
    }
}

const GOOD: &str = r#"
name = "t"
start = "menu"
[nodes.menu]
type = "gather"
prompt = "press_5"
digits = { "5" = "terms" }
on_fail = "bye"
[nodes.terms]
type = "play"
prompt = "terms"
next = "bye"
[nodes.bye]
type = "hangup"
"#;

#[test]
fn a_good_flow_checks() {
    let flow = run_check(GOOD).unwrap();
    assert_eq!(flow.name, "t");
    assert_eq!(flow.nodes.len(), 3);
    assert!(flow.warnings.is_empty());
}

#[test]
fn toml_syntax_error_has_position() {
    let e = errors("start = \"a\"\n[nodes.a\ntype = \"hangup\"\n");
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("callflows/x.toml:2:9: error: invalid TOML: "),
        "{}",
        e[0]
    );
}

#[test]
fn unknown_node_referenced_suggests_the_near_name() {
    let text = GOOD.replace(r#""5" = "terms""#, r#""5" = "termz""#);
    assert_eq!(
        errors(&text),
        [
            "callflows/x.toml:7:18: error: node `menu` goes to `termz`, which does not exist\n  hint: did you mean `terms`?"
        ]
    );
}

#[test]
fn unknown_node_without_near_name_lists_nodes() {
    let text = GOOD.replace(r#"next = "bye""#, r#"next = "elsewhere""#);
    assert_eq!(
        errors(&text),
        [
            "callflows/x.toml:12:8: error: node `terms` goes to `elsewhere`, which does not exist\n  hint: define it as [nodes.elsewhere], or use one of: menu, terms, bye"
        ]
    );
}

#[test]
fn start_missing_or_unknown() {
    let text = GOOD.replace("start = \"menu\"\n", "");
    assert_eq!(
        errors(&text),
        [
            "callflows/x.toml:1:1: error: the flow has no `start`\n  hint: add `start = \"NODE\"` at the top, naming the first node"
        ]
    );
    let text = GOOD.replace("start = \"menu\"", "start = \"mneu\"");
    assert_eq!(
        errors(&text),
        [
            "callflows/x.toml:3:9: error: `start` is `mneu`, which does not exist\n  hint: did you mean `menu`?"
        ]
    );
}

#[test]
fn unknown_node_type() {
    let text = GOOD.replace("type = \"play\"", "type = \"plya\"");
    assert_eq!(
        errors(&text),
        [
            "callflows/x.toml:10:8: error: unknown node type `plya`\n  hint: did you mean `play`? types: play, gather, branch, set, goto, hangup, dial, record, webhook"
        ]
    );
}

#[test]
fn missing_required_key_and_unknown_key() {
    let text = GOOD.replace("on_fail = \"bye\"", "on_fial = \"bye\"");
    assert_eq!(
        errors(&text),
        [
            "callflows/x.toml:4:8: error: node `menu` (gather) is missing `on_fail`\n  hint: add `on_fail = \"NODE\"`: where the call goes after the last failed attempt",
            "callflows/x.toml:8:1: error: unknown key `on_fial` in node `menu` (gather)\n  hint: did you mean `on_fail`?",
        ]
    );
}

#[test]
fn unreachable_node() {
    let text = format!("{GOOD}[nodes.lost]\ntype = \"hangup\"\n");
    assert_eq!(
        errors(&text),
        [
            "callflows/x.toml:15:8: error: node `lost` is never reached from `start` (`menu`)\n  hint: remove it, or send a `next`, `goto`, `else`, `digits` or `on_*` key to it"
        ]
    );
}

#[test]
fn missing_prompt_file() {
    let text = GOOD.replace("prompt = \"press_5\"", "prompt = \"pres_5\"");
    assert_eq!(
        errors(&text),
        [
            "callflows/x.toml:6:10: error: prompt `pres_5` has no file prompts/pres_5.wav\n  hint: did you mean `press_5`?"
        ]
    );
    let text = GOOD.replace("prompt = \"terms\"", "prompt = \"labour_terms\"");
    assert_eq!(
        errors(&text),
        [
            "callflows/x.toml:11:10: error: prompt `labour_terms` has no file prompts/labour_terms.wav\n  hint: add a line `labour_terms|TEXT` to prompts/prompts.txt and run prompts/gen.sh, or record the WAV (8 kHz mono 16-bit)"
        ]
    );
    let text = GOOD.replace("prompt = \"terms\"", "prompt = \"../etc/x\"");
    assert_eq!(
        errors(&text),
        [
            "callflows/x.toml:11:10: error: prompt name `../etc/x` is not a plain file name\n  hint: use letters, digits, `_` and `-`: the name of prompts/NAME.wav without `.wav`"
        ]
    );
}

#[test]
fn bad_duration_points_inside_the_string() {
    let text = GOOD.replace("on_fail = \"bye\"", "on_fail = \"bye\"\ntimeout = \"6\"");
    assert_eq!(
        errors(&text),
        [
            "callflows/x.toml:9:13: error: bad duration \"6\": the number 6 has no unit\n  hint: write a whole number and a unit: \"500ms\", \"6s\", \"3m\", \"1h\" or \"1m30s\""
        ]
    );
}

#[test]
fn loop_without_input() {
    let text = r#"
start = "a"
[nodes.a]
type = "goto"
next = "b"
[nodes.b]
type = "set"
vars = { x = "1" }
next = "a"
"#;
    assert_eq!(
        errors(text),
        [
            "callflows/x.toml:3:8: error: nodes `a` -> `b` -> `a` loop forever without waiting for the caller\n  hint: put a `gather` (or `record`, `dial`) in the loop, or leave it towards a `hangup`"
        ]
    );
    // A play-only loop never takes input either.
    let text = "start = \"p\"\n[nodes.p]\ntype = \"play\"\nprompt = \"hello\"\nnext = \"p\"\n";
    assert_eq!(
        errors(text),
        [
            "callflows/x.toml:2:8: error: nodes `p` -> `p` loop forever without waiting for the caller\n  hint: put a `gather` (or `record`, `dial`) in the loop, or leave it towards a `hangup`"
        ]
    );
}

#[test]
fn a_loop_through_a_gather_is_fine() {
    let text = GOOD
        .replace(r#"next = "bye""#, r#"next = "menu""#)
        .replace("[nodes.bye]", "[nodes.bye]\nprompt = \"goodbye\"");
    assert!(run_check(&text).is_ok(), "{:?}", errors(&text));
}

#[test]
fn unknown_condition_and_fact_list() {
    let text = r#"start = "b"
[nodes.b]
type = "branch"
cases = [ { if = "open and holliday", goto = "x" } ]
else = "x"
[nodes.x]
type = "hangup"
"#;
    assert_eq!(
        errors(text),
        [
            "callflows/x.toml:4:28: error: unknown condition `holliday`\n  hint: did you mean `holiday`? known facts: open, holiday, caller.repeat, caller.known, client.agreement, caller.agreed_recently, incident.active; comparisons: caller matches \"+1555*\", called == \"...\", digits == \"5\", attempts >= 2, var.NAME == \"value\""
        ]
    );
    let bad_op = text.replace("open and holliday", "attempts => 2");
    assert_eq!(
        errors(&bad_op),
        ["callflows/x.toml:4:28: error: unknown operator `=>`\n  hint: use ==, !=, <, <=, > or >="]
    );
}

#[test]
fn gather_without_digits_or_store() {
    let text = GOOD
        .replace("digits = { \"5\" = \"terms\" }\n", "")
        .replace(
            "start = \"menu\"",
            "start = \"menu\"\n[nodes.go]\ntype = \"goto\"\nnext = \"terms\"",
        );
    assert_eq!(
        errors(&text),
        [
            "callflows/x.toml:7:8: error: gather `menu` has neither `digits` nor `store`, so no input can ever be valid\n  hint: add `digits = { \"1\" = \"NODE\" }`, or `store = \"VAR\"` with `next` for free input"
        ]
    );
}

#[test]
fn digits_keys_must_be_dtmf_and_not_the_terminator() {
    let text = GOOD.replace(r#""5" = "terms""#, r#""5" = "terms", "x" = "bye""#);
    assert_eq!(
        errors(&text),
        [
            "callflows/x.toml:7:27: error: digits key \"x\" in node `menu` is not something a phone can send\n  hint: keys are made of 0-9, *, #, A-D, like \"5\" or \"*9\""
        ]
    );
    let text = GOOD.replace(r#""5" = "terms""#, r#""5#" = "terms""#);
    assert_eq!(
        errors(&text),
        [
            "callflows/x.toml:7:12: error: digits key \"5#\" in node `menu` contains the terminator `#`, so it can never be entered\n  hint: use another key, or change `terminator` (\"\" for none)"
        ]
    );
}

#[test]
fn key_longer_than_max_digits() {
    let text = GOOD
        .replace(r#""5" = "terms""#, r#""55" = "terms""#)
        .replace("on_fail", "max_digits = 1\non_fail");
    assert_eq!(
        errors(&text),
        [
            "callflows/x.toml:8:14: error: digits key \"55\" in node `menu` is longer than max_digits = 1, so it can never be entered\n  hint: raise `max_digits` to 2"
        ]
    );
}

#[test]
fn store_needs_next_and_next_needs_store() {
    let text = GOOD.replace("on_fail = \"bye\"", "on_fail = \"bye\"\nstore = \"ticket\"");
    assert_eq!(
        errors(&text),
        [
            "callflows/x.toml:4:8: error: node `menu` (gather) is missing `next`\n  hint: with `store`, add `next = \"NODE\"`: where the call goes with the input"
        ]
    );
    let text = GOOD.replace("on_fail = \"bye\"", "on_fail = \"bye\"\nnext = \"bye\"");
    assert_eq!(
        errors(&text),
        [
            "callflows/x.toml:9:8: error: `next` in gather `menu` is only used with `store`\n  hint: add `store = \"VAR\"` to accept free input, or remove `next` and use `digits`"
        ]
    );
}

#[test]
fn wrong_value_type_and_builtin_var() {
    let text = GOOD.replace("on_fail = \"bye\"", "on_fail = \"bye\"\nretries = \"2\"");
    assert_eq!(
        errors(&text),
        [
            "callflows/x.toml:9:11: error: `retries` in node `menu` must be a whole number, not a string"
        ]
    );
    let text = GOOD.replace(
        "type = \"play\"\nprompt = \"terms\"",
        "type = \"set\"\nvars = { caller = \"x\" }",
    );
    assert_eq!(
        errors(&text),
        [
            "callflows/x.toml:11:10: error: `caller` is a built-in variable and cannot be set\n  hint: pick another name; built-ins: caller, called, digits, attempts, dial_status, recording, incident_prompt"
        ]
    );
}

#[test]
fn never_set_variable_is_a_warning_only() {
    let text = r#"start = "b"
[nodes.b]
type = "branch"
cases = [ { if = "var.tiket == \"1\"", goto = "x" } ]
else = "x"
[nodes.x]
type = "hangup"
"#;
    let flow = run_check(text).unwrap();
    let w: Vec<String> = flow.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        w,
        [
            "callflows/x.toml:4:11: warning: condition reads `var.tiket`, which no node sets, so it is always empty\n  hint: set it with a `set` node or a gather's `store`"
        ]
    );
}

#[test]
fn record_without_on_error_is_a_warning() {
    let text = r#"start = "vm"
[nodes.vm]
type = "record"
next = "x"
[nodes.x]
type = "hangup"
"#;
    let flow = run_check(text).unwrap();
    let w: Vec<String> = flow.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        w,
        [
            "callflows/x.toml:2:8: warning: record node `vm` has no `on_error`: when the voicemail directory cannot be written, the call goes on to `next` without a message\n  hint: add `on_error = \"NODE\"`: e.g. ring the desk again and ask the caller to call back"
        ]
    );
    let with_branches = text.replace(
        "next = \"x\"",
        "next = \"x\"\non_error = \"x\"\non_empty = \"x\"\nmin_length = \"2s\"",
    );
    assert!(run_check(&with_branches).unwrap().warnings.is_empty());
    let e = errors(&text.replace(
        "next = \"x\"",
        "next = \"x\"\nmax = \"1s\"\non_error = \"x\"",
    ));
    assert_eq!(
        e,
        [
            "callflows/x.toml:2:8: error: `min_length` of node `vm` is not below `max`: no message could be kept\n  hint: a few seconds at most, e.g. \"1500ms\""
        ]
    );
}

#[test]
fn all_problems_are_reported_in_file_order() {
    let text = GOOD
        .replace("prompt = \"press_5\"", "prompt = \"nope\"")
        .replace("type = \"hangup\"", "type = \"hangup\"\ncolour = \"red\"");
    let e = errors(&text);
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].starts_with("callflows/x.toml:6:10: error: prompt `nope`"));
    assert!(
        e[1].starts_with(
            "callflows/x.toml:15:1: error: unknown key `colour` in node `bye` (hangup)"
        )
    );
}

#[test]
fn shipped_flows_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for flow in [
        "callflows/after_hours.toml",
        "callflows/examples/simple_menu.toml",
    ] {
        let result = check(&root.join(flow), &root.join("prompts"));
        assert!(
            result.is_ok(),
            "{flow}: {}",
            result.err().map(|d| d.to_string()).unwrap_or_default()
        );
        assert!(result.is_ok_and(|f| f.warnings.is_empty()));
    }
}

#[test]
fn prompt_var_must_name_a_variable_something_sets() {
    let flow = r#"
name = "t"
start = "p"
[nodes.p]
type = "play"
prompt_var = "incident_promt"
next = "bye"
[nodes.bye]
type = "hangup"
"#;
    let errs = errors(flow);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("`prompt_var` names `incident_promt`, which no node sets")
            && errs[0].contains("did you mean `incident_prompt`?"),
        "{errs:?}"
    );
    assert!(errors(&flow.replace("incident_promt", "incident_prompt")).is_empty());
}
