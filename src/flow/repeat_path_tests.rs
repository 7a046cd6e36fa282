//! The shipped after-hours flow (`callflows/after_hours.toml`) for repeat callers: only a caller
//! who agreed to the terms within the repeat window skips the menus (and is told so, and the call
//! is recorded as agreed); any other repeat caller hears the disclaimer and the terms and presses
//! 5 and 1, with barge-in, and keys pressed early never skip a prompt.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Action, Event, Facts, Flow, Run, simulate};

fn shipped() -> Arc<Flow> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    match super::check(
        &root.join("callflows/after_hours.toml"),
        &root.join("prompts"),
    ) {
        Ok(f) => Arc::new(f),
        Err(d) => panic!("{d}"),
    }
}

fn repeat_caller(agreed_recently: bool) -> Facts {
    Facts {
        caller: "+15550100".into(),
        called: "100".into(),
        caller_repeat: true,
        caller_agreed_recently: agreed_recently,
        ..Facts::default()
    }
}

/// `ivr simulate` with every prompt 2 s long.
fn session(facts: Facts, input: &str) -> String {
    let mut out = Vec::new();
    simulate(shipped(), facts, io::Cursor::new(input), &mut out, &|_| {
        Duration::from_secs(2)
    })
    .expect("simulate");
    String::from_utf8(out).expect("utf-8 transcript")
}

#[test]
fn simulate_repeat_caller_without_recent_agreement_hears_the_terms_and_agrees() {
    // Silence after the welcome and the disclaimer, 5, silence after the terms, 1, no ticket,
    // nobody at the desk, then hang up at the voicemail review.
    let out = session(repeat_caller(false), "\n\n5\n\n1\n#\n\nhangup\n");
    let expected = "\
call from +15550100 to 100 (flow `after-hours`; open: no, holiday: no)
facts: caller.repeat
[00:00.0] -> hours (branch)
[00:00.0] -> welcome_back (play)
[00:00.0]    play repeat_confirm_terms (2.0s)
[00:02.0] keys (Enter: none, `hangup`)> 
[00:02.0] -> repeat_disclaimer (play)
[00:02.0]    play rate_disclaimer (2.0s)
[00:04.0] keys (Enter: none, `hangup`)> 
[00:04.0] -> repeat_menu (gather)
[00:04.0]    play press_5 (2.0s)
[00:06.0] keys (Enter: none, `hangup`)> 5
[00:06.3]    key 5
[00:06.3] -> repeat_terms (play)
[00:06.3]    play terms (2.0s)
[00:08.3] keys (Enter: none, `hangup`)> 
[00:08.3] -> agree_menu (gather)
[00:08.3]    play press_1_agree (2.0s)
[00:10.3] keys (Enter: none, `hangup`)> 1
[00:10.6]    key 1
[00:10.6] -> agreed (set)
[00:10.6] -> ticket (gather)
[00:10.6]    play ticket_number (2.0s)
[00:12.6] keys (Enter: none, `hangup`)> #
[00:12.9]    key #
[00:12.9] -> notify_request (webhook)
[00:12.9]    webhook after_hours_request agreed=true attempts=1 called=100 caller=+15550100 digits= ticket=
[00:12.9] -> connecting (play)
[00:12.9]    play connecting (2.0s)
[00:14.9] -> ring_desk (dial)
[00:14.9]    dial desk (Simultaneous, ring 30s, whisper whisper_accept)
[00:14.9] answered? [y/N/busy/failed/hangup]> 
[00:44.9]    dial: no_answer
[00:44.9] -> voicemail (record)
[00:44.9]    play leave_message (2.0s)
[00:46.9]    record (max 3m, ends on `#` or 5s silence): caller speaks 20.0s
[01:06.9]    play review_options (2.0s)
[01:08.9] keys (Enter: none, `hangup`)> hangup
[01:08.9]    caller hangs up
[01:08.9]    log: caller hung up in node `voicemail`
[01:08.9] call ended
variables: agreed=true attempts=1 called=100 caller=+15550100 dial_status=no_answer recording=var/voicemail/simulated.wav
";
    assert_eq!(out, expected, "\n{out}");
}

#[test]
fn simulate_repeat_caller_without_agreement_who_hangs_up_is_not_agreed() {
    let out = session(repeat_caller(false), "\n\nhangup\n");
    assert!(
        out.contains("-> repeat_menu (gather)\n[00:04.0]    play press_5 (2.0s)\n[00:06.0] keys (Enter: none, `hangup`)> hangup\n"),
        "{out}"
    );
    assert!(!out.contains("ring_desk"), "{out}");
    assert!(
        out.ends_with("variables: called=100 caller=+15550100\n"),
        "{out}"
    );
}

#[test]
fn simulate_repeat_caller_who_agreed_recently_is_told_and_goes_to_the_desk() {
    let out = session(repeat_caller(true), "y\n");
    let expected = "\
call from +15550100 to 100 (flow `after-hours`; open: no, holiday: no)
facts: caller.repeat, caller.agreed_recently
[00:00.0] -> hours (branch)
[00:00.0] -> agreed_earlier (set)
[00:00.0] -> welcome_back_agreed (play)
[00:00.0]    play repeat_agreed (2.0s)
[00:02.0] -> ring_desk (dial)
[00:02.0]    dial desk (Simultaneous, ring 30s, whisper whisper_accept)
[00:02.0] answered? [y/N/busy/failed/hangup]> y
[01:02.0]    dial: answered
[01:02.0]    hang up (call completed)
[01:02.0] call ended
variables: agreed=true called=100 caller=+15550100 dial_status=answered
";
    assert_eq!(out, expected, "\n{out}");
}

#[test]
fn an_agreement_without_a_repeat_call_still_hears_the_whole_procedure() {
    // Another number called in between: not a repeat, so the earlier agreement does not count.
    let facts = Facts {
        caller_repeat: false,
        ..repeat_caller(true)
    };
    let out = session(facts, "hangup\n");
    assert!(
        out.contains("-> greeting (play)\n[00:00.0]    play after_hours_greeting (2.0s)\n[00:02.0]    play rate_disclaimer (2.0s)\n"),
        "{out}"
    );
    assert!(!out.contains("agreed=true"), "{out}");
}

fn play(prompt: &str, barge_in: bool) -> Action {
    Action::Play {
        prompts: vec![prompt.to_string()],
        barge_in,
    }
}

fn enter(node: &str) -> Action {
    Action::Enter { node: node.into() }
}

#[test]
fn keys_cut_the_repeat_prompts_short_but_never_skip_one() {
    let t0 = Instant::now();
    let mut run = Run::new(shipped(), repeat_caller(false));
    assert_eq!(
        run.start(t0),
        [
            enter("hours"),
            enter("welcome_back"),
            play("repeat_confirm_terms", true)
        ]
    );
    // 5 during the welcome stops it; the disclaimer still starts.
    assert_eq!(
        run.handle(t0, Event::Digit('5')),
        [
            Action::StopPlayback,
            enter("repeat_disclaimer"),
            play("rate_disclaimer", true)
        ]
    );
    // The stopped welcome's end does not end the disclaimer.
    assert!(run.handle(t0, Event::PlaybackDone).is_empty());
    // 1 during the disclaimer stops it; the typed-ahead 5 answers the menu, and the terms start.
    assert_eq!(
        run.handle(t0, Event::Digit('1')),
        [
            Action::StopPlayback,
            enter("repeat_menu"),
            enter("repeat_terms"),
            play("terms", true)
        ]
    );
    assert!(run.handle(t0, Event::PlaybackDone).is_empty());
    assert_eq!(
        run.vars().get("agreed"),
        None,
        "not agreed before the terms"
    );
    // The terms end (or another key stops them): the typed-ahead 1 is the agreement.
    let after_terms = run.handle(t0, Event::PlaybackDone);
    assert_eq!(
        after_terms[..3],
        [enter("agree_menu"), enter("agreed"), enter("ticket")],
        "{after_terms:?}"
    );
    assert_eq!(run.vars().get("agreed").map(String::as_str), Some("true"));
}
