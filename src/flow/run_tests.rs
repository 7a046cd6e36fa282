//! The interpreter on a virtual clock: every node type, barge-in, timeouts, retries,
//! type-ahead and the loop guard.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::flow::check::build;

fn flow(text: &str) -> Arc<Flow> {
    flow_with(text, true)
}

fn flow_with(text: &str, check_loops: bool) -> Arc<Flow> {
    let prompts: BTreeSet<String> = ["a", "b", "menu", "bad", "silence", "bye", "vm", "whisper"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    match build(
        Path::new("t.toml"),
        text,
        Path::new("prompts"),
        &prompts,
        check_loops,
    ) {
        Ok(f) => Arc::new(f),
        Err(d) => panic!("{d}"),
    }
}

fn play(prompts: &[&str], barge_in: bool) -> Action {
    Action::Play {
        prompts: prompts.iter().map(|s| s.to_string()).collect(),
        barge_in,
    }
}

fn enter(node: &str) -> Action {
    Action::Enter { node: node.into() }
}

fn hangup(node: &str) -> Action {
    Action::Hangup {
        reason: format!("flow ended at `{node}`"),
    }
}

/// Actions without `Log`s (asserted separately where they matter).
fn quiet(actions: Vec<Action>) -> Vec<Action> {
    actions
        .into_iter()
        .filter(|a| !matches!(a, Action::Log { .. }))
        .collect()
}

const MENU: &str = r#"
start = "menu"
[nodes.menu]
type = "gather"
prompt = "menu"
digits = { "1" = "one", "22" = "two" }
timeout = "5s"
inter_digit_timeout = "2s"
retries = 1
no_input_prompt = "silence"
invalid_prompt = "bad"
on_fail = "fail"
[nodes.one]
type = "hangup"
prompt = "a"
[nodes.two]
type = "hangup"
prompt = "b"
[nodes.fail]
type = "hangup"
prompt = "bye"
"#;

#[test]
fn play_then_next() {
    let f = flow(
        "start = \"p\"\n[nodes.p]\ntype = \"play\"\nprompts = [\"a\", \"b\"]\nnext = \"end\"\n[nodes.end]\ntype = \"hangup\"\n",
    );
    let t0 = Instant::now();
    let mut run = Run::new(f, Facts::default());
    assert_eq!(run.start(t0), [enter("p"), play(&["a", "b"], false)]);
    assert_eq!(run.current_node(), Some("p"));
    assert_eq!(run.poll_timeout(), None);
    assert_eq!(
        run.handle(t0, Event::PlaybackDone),
        [enter("end"), hangup("end")]
    );
    assert!(run.is_finished());
    assert!(run.handle(t0, Event::PlaybackDone).is_empty());
}

#[test]
fn gather_barge_in_stops_prompt_and_matches_at_once() {
    let t0 = Instant::now();
    let mut run = Run::new(flow(MENU), Facts::default());
    assert_eq!(run.start(t0), [enter("menu"), play(&["menu"], true)]);
    // "1" is a key no longer key extends: no inter-digit wait.
    assert_eq!(
        run.handle(t0, Event::Digit('1')),
        [Action::StopPlayback, enter("one"), play(&["a"], false)]
    );
    // The stopped menu prompt's PlaybackDone must not end the hangup prompt.
    assert!(run.handle(t0, Event::PlaybackDone).is_empty());
    assert!(!run.is_finished());
    assert_eq!(run.handle(t0, Event::PlaybackDone), [hangup("one")]);
    assert_eq!(run.vars().get("digits").map(String::as_str), Some("1"));
    assert_eq!(run.vars().get("attempts").map(String::as_str), Some("1"));
}

#[test]
fn first_digit_timeout_starts_after_the_prompt() {
    let t0 = Instant::now();
    let mut run = Run::new(flow(MENU), Facts::default());
    run.start(t0);
    assert_eq!(run.poll_timeout(), None, "no timer while the prompt plays");
    let t1 = t0 + Duration::from_secs(7);
    assert!(run.handle(t1, Event::PlaybackDone).is_empty());
    assert_eq!(run.poll_timeout(), Some(t1 + Duration::from_secs(5)));
    // Too early: nothing happens.
    assert!(run.handle_timeout(t1 + Duration::from_secs(4)).is_empty());
    // Timeout: no-input prompt, then the question again (retry 1 of 1).
    assert_eq!(
        quiet(run.handle_timeout(t1 + Duration::from_secs(5))),
        [play(&["silence", "menu"], true)]
    );
    assert_eq!(run.poll_timeout(), None);
    let t2 = t1 + Duration::from_secs(10);
    run.handle(t2, Event::PlaybackDone);
    // Second silence: out of retries.
    let out = run.handle_timeout(t2 + Duration::from_secs(5));
    assert!(out.contains(&Action::Log {
        message: "gather `menu`: no input on the last of 2 attempts".into()
    }));
    assert_eq!(quiet(out), [enter("fail"), play(&["bye"], false)]);
    assert_eq!(run.vars().get("attempts").map(String::as_str), Some("2"));
}

#[test]
fn inter_digit_timeout_and_invalid_retry() {
    let t0 = Instant::now();
    let mut run = Run::new(flow(MENU), Facts::default());
    run.start(t0);
    run.handle(t0, Event::PlaybackDone);
    // "2" could become "22": wait for the next digit.
    assert!(
        run.handle(t0 + Duration::from_secs(1), Event::Digit('2'))
            .is_empty()
    );
    assert_eq!(run.poll_timeout(), Some(t0 + Duration::from_secs(3)));
    // Inter-digit timeout: "2" is not a key -> invalid prompt and the menu again.
    assert_eq!(
        quiet(run.handle_timeout(t0 + Duration::from_secs(3))),
        [play(&["bad", "menu"], true)]
    );
    // Retry: "22" completes at max_digits.
    let t1 = t0 + Duration::from_secs(4);
    assert_eq!(run.handle(t1, Event::Digit('2')), [Action::StopPlayback]);
    assert_eq!(run.poll_timeout(), Some(t1 + Duration::from_secs(2)));
    assert_eq!(
        run.handle(t1, Event::Digit('2')),
        [enter("two"), play(&["b"], false)]
    );
    assert_eq!(run.vars().get("attempts").map(String::as_str), Some("2"));
}

#[test]
fn wrong_input_twice_goes_to_on_fail() {
    let t0 = Instant::now();
    let mut run = Run::new(flow(MENU), Facts::default());
    run.start(t0);
    assert_eq!(
        quiet(run.handle(t0, Event::Digit('9'))),
        [Action::StopPlayback, play(&["bad", "menu"], true)]
    );
    let out = quiet(run.handle(t0, Event::Digit('#')));
    // The terminator alone is an (invalid) empty input; the stale PlaybackDone is still owed.
    assert_eq!(
        out,
        [Action::StopPlayback, enter("fail"), play(&["bye"], false)]
    );
}

#[test]
fn type_ahead_during_a_play_feeds_the_next_gather() {
    let text = MENU.replace(
        "start = \"menu\"",
        "start = \"intro\"\n[nodes.intro]\ntype = \"play\"\nprompt = \"a\"\nnext = \"menu\"",
    );
    let t0 = Instant::now();
    let mut run = Run::new(flow(&text), Facts::default());
    assert_eq!(run.start(t0), [enter("intro"), play(&["a"], false)]);
    // No barge-in: the prompt goes on, the digit is kept.
    assert!(run.handle(t0, Event::Digit('1')).is_empty());
    // The gather consumes it without playing its prompt.
    assert_eq!(
        run.handle(t0, Event::PlaybackDone),
        [enter("menu"), enter("one"), play(&["a"], false)]
    );
}

#[test]
fn play_with_barge_in_moves_on_and_keeps_the_digit() {
    let text = MENU.replace("start = \"menu\"", "start = \"intro\"\n[nodes.intro]\ntype = \"play\"\nprompt = \"a\"\nbarge_in = true\nnext = \"menu\"");
    let t0 = Instant::now();
    let mut run = Run::new(flow(&text), Facts::default());
    run.start(t0);
    assert_eq!(
        run.handle(t0, Event::Digit('2')),
        [Action::StopPlayback, enter("menu")]
    );
    // The "2" is waiting for a second digit; the stopped intro's PlaybackDone changes nothing.
    assert!(run.handle(t0, Event::PlaybackDone).is_empty());
    assert_eq!(
        run.handle(t0, Event::Digit('2')),
        [enter("two"), play(&["b"], false)]
    );
}

#[test]
fn gather_without_barge_in_reads_digits_after_the_prompt() {
    let text = MENU.replace("retries = 1", "retries = 1\nbarge_in = false");
    let t0 = Instant::now();
    let mut run = Run::new(flow(&text), Facts::default());
    run.start(t0);
    assert!(run.handle(t0, Event::Digit('1')).is_empty());
    assert_eq!(
        run.handle(t0, Event::PlaybackDone),
        [enter("one"), play(&["a"], false)]
    );
}

#[test]
fn store_free_input_with_terminator_and_skip() {
    let text = r#"
start = "ticket"
[nodes.ticket]
type = "gather"
prompt = "menu"
store = "ticket"
max_digits = 6
next = "done"
on_fail = "done"
[nodes.done]
type = "hangup"
"#;
    let f = flow(text);
    let t0 = Instant::now();
    let mut run = Run::new(Arc::clone(&f), Facts::default());
    run.start(t0);
    for d in ['4', '2'] {
        run.handle(t0, Event::Digit(d));
    }
    let out = run.handle(t0, Event::Digit('#'));
    assert_eq!(out, [enter("done"), hangup("done")]);
    assert_eq!(run.vars().get("ticket").map(String::as_str), Some("42"));
    // Only the terminator: a deliberate skip with an empty value.
    let mut run = Run::new(f, Facts::default());
    run.start(t0);
    run.handle(t0, Event::Digit('#'));
    assert_eq!(run.vars().get("ticket").map(String::as_str), Some(""));
    assert!(run.is_finished());
}

#[test]
fn branch_on_facts_vars_and_caller() {
    let text = r#"
start = "b"
[nodes.b]
type = "branch"
cases = [
  { if = "open", goto = "day" },
  { if = "caller matches \"+1555*\" and not holiday", goto = "local" },
]
else = "other"
[nodes.day]
type = "hangup"
[nodes.local]
type = "hangup"
[nodes.other]
type = "hangup"
"#;
    let f = flow(text);
    let t0 = Instant::now();
    let ends = |facts: Facts| {
        let mut run = Run::new(Arc::clone(&f), facts);
        run.start(t0);
        run.current_node().map(str::to_string)
    };
    assert_eq!(
        ends(Facts {
            open: true,
            ..Facts::default()
        })
        .as_deref(),
        Some("day")
    );
    let local = Facts {
        caller: "+15551234".into(),
        ..Facts::default()
    };
    assert_eq!(ends(local.clone()).as_deref(), Some("local"));
    assert_eq!(
        ends(Facts {
            holiday: true,
            ..local
        })
        .as_deref(),
        Some("other")
    );
}

#[test]
fn set_goto_and_webhook() {
    let text = r#"
start = "s"
[nodes.s]
type = "set"
vars = { agreed = "true" }
next = "g"
[nodes.g]
type = "goto"
next = "w"
[nodes.w]
type = "webhook"
event = "after_hours_request"
next = "end"
on_error = "err"
[nodes.end]
type = "hangup"
[nodes.err]
type = "hangup"
"#;
    let t0 = Instant::now();
    let mut run = Run::new(
        flow(text),
        Facts {
            caller: "100".into(),
            ..Facts::default()
        },
    );
    let out = run.start(t0);
    let vars: BTreeMap<String, String> = [("agreed", "true"), ("called", ""), ("caller", "100")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(
        out,
        [
            enter("s"),
            enter("g"),
            enter("w"),
            Action::Webhook {
                event: "after_hours_request".into(),
                vars
            }
        ]
    );
    let out = run.handle(t0, Event::WebhookDone { ok: false });
    assert_eq!(quiet(out), [enter("err"), hangup("err")]);
}

const DIAL: &str = r#"
start = "d"
[nodes.d]
type = "dial"
targets = ["desk"]
strategy = "sequential"
timeout = "20s"
whisper = "whisper"
on_no_answer = "vm"
on_busy = "busy"
[nodes.vm]
type = "record"
prompt = "vm"
max = "2m"
next = "end"
[nodes.busy]
type = "hangup"
[nodes.end]
type = "hangup"
prompt = "bye"
"#;

#[test]
fn dial_outcomes_and_record() {
    let f = flow(DIAL);
    let t0 = Instant::now();
    let mut run = Run::new(Arc::clone(&f), Facts::default());
    assert_eq!(
        run.start(t0),
        [
            enter("d"),
            Action::Dial {
                targets: vec!["desk".into()],
                strategy: Strategy::Sequential,
                timeout: Duration::from_secs(20),
                ring_each: None,
                whisper: Some("whisper".into()),
            }
        ]
    );
    // Digits while dialling belong to the bridge.
    assert!(run.handle(t0, Event::Digit('5')).is_empty());
    assert_eq!(
        run.handle(t0, Event::DialDone(DialOutcome::NoAnswer)),
        [
            enter("vm"),
            Action::Record {
                prompt: Some("vm".into()),
                max: Duration::from_secs(120),
                finish_on: "#".into(),
                silence: Duration::from_secs(5),
                min_length: Duration::from_millis(1500),
            }
        ]
    );
    assert_eq!(
        run.vars().get("dial_status").map(String::as_str),
        Some("no_answer")
    );
    let out = run.handle(
        t0,
        Event::RecordDone {
            path: Some("var/vm/1.wav".into()),
        },
    );
    assert_eq!(
        out,
        [
            Action::KeepRecording {
                path: "var/vm/1.wav".into()
            },
            enter("end"),
            play(&["bye"], false)
        ]
    );
    assert_eq!(
        run.vars().get("recording").map(String::as_str),
        Some("var/vm/1.wav")
    );

    let mut run = Run::new(Arc::clone(&f), Facts::default());
    run.start(t0);
    assert_eq!(
        run.handle(t0, Event::DialDone(DialOutcome::Busy)),
        [enter("busy"), hangup("busy")]
    );
    let mut run = Run::new(Arc::clone(&f), Facts::default());
    run.start(t0);
    // Failed falls back to on_no_answer.
    assert_eq!(
        run.handle(t0, Event::DialDone(DialOutcome::Failed))[0],
        enter("vm")
    );
    let mut run = Run::new(f, Facts::default());
    run.start(t0);
    assert_eq!(
        run.handle(t0, Event::DialDone(DialOutcome::Answered)),
        [Action::Hangup {
            reason: "call completed".into()
        }]
    );
}

const REVIEW: &str = r#"
start = "vm"
[nodes.vm]
type = "record"
prompt = "vm"
max = "1m"
silence = "3s"
review = "menu"
next = "end"
[nodes.end]
type = "hangup"
"#;

#[test]
fn voicemail_review_listen_rerecord_keep() {
    let f = flow(REVIEW);
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let mut run = Run::new(f, Facts::default());
    run.start(t0);
    let done = |p: &str| Event::RecordDone {
        path: Some(p.into()),
    };
    // The message is not kept yet: the caller hears the options.
    assert_eq!(run.handle(at(0), done("v1.wav")), [play(&["menu"], true)]);
    assert_eq!(run.poll_timeout(), None);
    assert!(run.handle(at(3000), Event::PlaybackDone).is_empty());
    assert_eq!(run.poll_timeout(), Some(at(3000) + Duration::from_secs(8)));
    // 1: listen, then the options again.
    assert_eq!(
        run.handle(at(4000), Event::Digit('1')),
        [Action::PlayRecording {
            path: "v1.wav".into()
        }]
    );
    assert_eq!(run.poll_timeout(), None);
    assert_eq!(
        run.handle(at(9000), Event::PlaybackDone),
        [play(&["menu"], true)]
    );
    // 2 during the options: stop them, drop the message, record again.
    let out = quiet(run.handle(at(9500), Event::Digit('2')));
    assert_eq!(
        out,
        [
            Action::StopPlayback,
            Action::DiscardRecording {
                path: "v1.wav".into()
            },
            Action::Record {
                prompt: Some("vm".into()),
                max: Duration::from_secs(60),
                finish_on: "#".into(),
                silence: Duration::from_secs(3),
                min_length: Duration::from_millis(1500),
            }
        ]
    );
    assert!(run.vars().get("recording").is_none());
    // The stopped options' PlaybackDone changes nothing.
    assert!(run.handle(at(9600), Event::PlaybackDone).is_empty());
    assert_eq!(
        run.handle(at(20_000), done("v2.wav")),
        [play(&["menu"], true)]
    );
    // 3 keeps it and moves on.
    assert_eq!(
        run.handle(at(20_500), Event::Digit('3')),
        [
            Action::StopPlayback,
            Action::KeepRecording {
                path: "v2.wav".into()
            },
            enter("end"),
            hangup("end")
        ]
    );
}

#[test]
fn voicemail_review_silence_keeps_the_message() {
    let f = flow(REVIEW);
    let t0 = Instant::now();
    let mut run = Run::new(f, Facts::default());
    run.start(t0);
    run.handle(
        t0,
        Event::RecordDone {
            path: Some("v.wav".into()),
        },
    );
    run.handle(t0 + Duration::from_secs(3), Event::PlaybackDone);
    let due = run.poll_timeout().unwrap();
    assert!(
        run.handle_timeout(due - Duration::from_millis(1))
            .is_empty()
    );
    assert_eq!(
        run.handle_timeout(due),
        [
            Action::KeepRecording {
                path: "v.wav".into()
            },
            enter("end"),
            hangup("end")
        ]
    );
}

const RECORD_BRANCHES: &str = r#"
start = "vm"
[nodes.vm]
type = "record"
prompt = "vm"
min_length = "2s"
next = "end"
on_empty = "empty"
on_error = "failed"
[nodes.empty]
type = "gather"
prompt = "menu"
digits = { "2" = "vm" }
on_fail = "end"
[nodes.failed]
type = "hangup"
prompt = "bye"
[nodes.end]
type = "hangup"
"#;

#[test]
fn record_branches_on_no_message_and_on_failure() {
    let f = flow(RECORD_BRANCHES);
    let t0 = Instant::now();
    let mut run = Run::new(Arc::clone(&f), Facts::default());
    let out = run.start(t0);
    assert!(
        out.iter()
            .any(|a| matches!(a, Action::Record { min_length, .. } if *min_length == Duration::from_secs(2))),
        "{out:?}"
    );
    // No message: nothing kept, the `on_empty` node asks again; 2 records again.
    let out = run.handle(t0, Event::RecordEmpty);
    assert!(
        !out.iter()
            .any(|a| matches!(a, Action::KeepRecording { .. })),
        "{out:?}"
    );
    assert_eq!(quiet(out), [enter("empty"), play(&["menu"], true)]);
    assert!(run.vars().get("recording").is_none());
    run.handle(t0, Event::PlaybackDone);
    let out = quiet(run.handle(t0, Event::Digit('2')));
    assert_eq!(out[0], enter("vm"));
    // The recording cannot be made: the `on_error` node, never a kept message.
    let out = run.handle(t0, Event::RecordFailed);
    assert!(
        out.contains(&Action::Log {
            message: "record `vm`: the message could not be recorded; going to `failed`".into()
        }),
        "{out:?}"
    );
    assert_eq!(quiet(out), [enter("failed"), play(&["bye"], false)]);

    // Without the branches both go on to `next`.
    let plain = flow(
        "start = \"vm\"\n[nodes.vm]\ntype = \"record\"\nnext = \"end\"\n[nodes.end]\ntype = \"hangup\"\n",
    );
    for ev in [Event::RecordEmpty, Event::RecordFailed] {
        let mut run = Run::new(Arc::clone(&plain), Facts::default());
        run.start(t0);
        assert_eq!(quiet(run.handle(t0, ev)), [enter("end"), hangup("end")]);
    }
}

#[test]
fn caller_hangup_ends_the_run() {
    let t0 = Instant::now();
    let mut run = Run::new(flow(MENU), Facts::default());
    run.start(t0);
    run.handle(t0, Event::PlaybackDone);
    assert!(run.poll_timeout().is_some());
    assert_eq!(
        run.handle(t0, Event::Hangup),
        [Action::Log {
            message: "caller hung up in node `menu`".into()
        }]
    );
    assert!(run.is_finished());
    assert_eq!(run.poll_timeout(), None);
    assert!(run.handle_timeout(t0 + Duration::from_secs(60)).is_empty());
}

#[test]
fn loop_guard_hangs_up() {
    // `check` rejects this loop; built without that check to prove the runtime guard.
    let text = "start = \"a\"\n[nodes.a]\ntype = \"goto\"\nnext = \"b\"\n[nodes.b]\ntype = \"goto\"\nnext = \"a\"\n";
    let mut run = Run::new(flow_with(text, false), Facts::default());
    let out = run.start(Instant::now());
    assert_eq!(
        out.iter()
            .filter(|a| matches!(a, Action::Enter { .. }))
            .count(),
        MAX_HOPS
    );
    assert_eq!(
        out[out.len() - 2..],
        [
            Action::Log {
                message: "flow loop: 100 nodes in a row without waiting for the caller (last: `a`)"
                    .into()
            },
            Action::Hangup {
                reason: "flow loop".into()
            }
        ]
    );
    assert!(run.is_finished());
}

const INCIDENT: &str = r#"
start = "check"
[nodes.check]
type = "branch"
cases = [{ if = "incident.active", goto = "announce" }]
else = "bye"
[nodes.announce]
type = "play"
prompts = ["a"]
prompt_var = "incident_prompt"
next = "bye"
[nodes.bye]
type = "hangup"
"#;

#[test]
fn incident_branch_plays_the_prompt_its_variable_names() {
    let t0 = Instant::now();
    let facts = Facts {
        incident_active: true,
        incident_prompt: "b".into(),
        ..Facts::default()
    };
    let mut run = Run::new(flow(INCIDENT), facts);
    assert_eq!(
        quiet(run.start(t0)),
        [enter("check"), enter("announce"), play(&["a", "b"], false)]
    );
    // An active incident without a configured prompt: the static prompts only.
    let facts = Facts {
        incident_active: true,
        ..Facts::default()
    };
    let mut run = Run::new(flow(INCIDENT), facts);
    assert_eq!(
        quiet(run.start(t0)),
        [enter("check"), enter("announce"), play(&["a"], false)]
    );
    // No incident: straight past it.
    let mut run = Run::new(flow(INCIDENT), Facts::default());
    assert_eq!(
        quiet(run.start(t0)),
        [enter("check"), enter("bye"), hangup("bye")]
    );
}
