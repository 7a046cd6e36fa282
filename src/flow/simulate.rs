//! `ivr simulate`: run a flow in the terminal on a virtual clock.
//!
//! The simulator plays the call shell: it prints the caller's facts that are set (`facts:
//! caller.repeat, ...`, from `--repeat` and the like), each node entered and each prompt played
//! (with its length, advancing the virtual clock by it) and answers the run's actions:
//!
//! - When the flow asks the caller for keys it reads one line: the keys typed (pressed right
//!   after the prompt ends), an empty line (silence: the clock jumps to the timeout) or `hangup`.
//!   End of input counts as `hangup`.
//! - `dial` asks "answered? [y/N/busy/failed]"; an empty line is "no answer" (the clock advances
//!   by the ring timeout), `y` a 1-minute conversation.
//! - `record` records a simulated 20-second message (or, with [`Recording::Empty`], a caller who
//!   says nothing; with [`Recording::Failed`], a voicemail directory that cannot be written);
//!   `webhook` is accepted at once.
//!
//! Nothing here reads the wall clock, so a session is deterministic and testable with a
//! `Cursor` as input.

use std::collections::VecDeque;
use std::io::{self, BufRead, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::duration::format_duration;
use super::facts::{FACTS, Facts};
use super::model::Flow;
use super::nodes::DialOutcome;
use super::run::{Action, Event, Run};

/// Length of the simulated voicemail.
const MESSAGE: Duration = Duration::from_secs(20);
/// Length of a simulated answered call.
const CONVERSATION: Duration = Duration::from_secs(60);
/// Time between simulated key presses.
const KEY_GAP: Duration = Duration::from_millis(300);

/// What a simulated `record` node gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Recording {
    /// A 20-second message.
    #[default]
    Message,
    /// The caller says nothing: no message (the node's `on_empty`).
    Empty,
    /// The voicemail cannot be written (the node's `on_error`).
    Failed,
}

/// Runs `flow` for one simulated call; see the module docs for the input it reads.
pub fn simulate(
    flow: Arc<Flow>,
    facts: Facts,
    input: impl BufRead,
    out: impl Write,
    prompt_durations: &dyn Fn(&str) -> Duration,
) -> io::Result<()> {
    simulate_recording(
        flow,
        facts,
        Recording::Message,
        input,
        out,
        prompt_durations,
    )
}

/// [`simulate`], with `recording` as what every `record` node gets.
pub fn simulate_recording(
    flow: Arc<Flow>,
    facts: Facts,
    recording: Recording,
    input: impl BufRead,
    out: impl Write,
    prompt_durations: &dyn Fn(&str) -> Duration,
) -> io::Result<()> {
    simulate_with_desk(flow, facts, recording, None, input, out, prompt_durations)
}

/// Whom a `dial` of these groups rings, this long after the call started: one line each.
pub type DeskView<'a> = &'a dyn Fn(&[String], Duration) -> Vec<String>;

/// [`simulate_recording`], printing under each `dial` whom it rings (`ivr simulate` passes the
/// config's desk groups, so `oncall` shows who is on call at the simulated moment).
pub fn simulate_with_desk(
    flow: Arc<Flow>,
    facts: Facts,
    recording: Recording,
    desk: Option<DeskView<'_>>,
    input: impl BufRead,
    out: impl Write,
    prompt_durations: &dyn Fn(&str) -> Duration,
) -> io::Result<()> {
    let mut sim = Sim {
        desk,
        recording,
        t0: Instant::now(),
        now: Duration::ZERO,
        input,
        out,
        prompt_durations,
        playing: VecDeque::new(),
        events: VecDeque::new(),
        keys: VecDeque::new(),
        answered: false,
    };
    writeln!(
        sim.out,
        "call from {} to {} (flow `{}`; open: {}, holiday: {})",
        or_none(&facts.caller),
        or_none(&facts.called),
        flow.name,
        yes_no(facts.open),
        yes_no(facts.holiday)
    )?;
    // The caller's facts, when any is set (`--repeat`, `--agreed-recently`).
    let caller_facts: Vec<&str> = FACTS
        .iter()
        .filter(|f| !matches!(f.name, "open" | "holiday") && (f.get)(&facts))
        .map(|f| f.name)
        .collect();
    if !caller_facts.is_empty() {
        writeln!(sim.out, "facts: {}", caller_facts.join(", "))?;
    }
    let mut run = Run::new(flow, facts);
    let mut actions = run.start(sim.t0);
    loop {
        sim.perform(&run, actions)?;
        if run.is_finished() {
            break;
        }
        actions = match sim.next_event(&run)? {
            Next::Event(ev) => run.handle(sim.instant(), ev),
            Next::Timeout => run.handle_timeout(sim.instant()),
        };
    }
    writeln!(sim.out, "[{}] call ended", stamp(sim.now))?;
    let vars: Vec<String> = run
        .vars()
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    writeln!(sim.out, "variables: {}", vars.join(" "))?;
    Ok(())
}

enum Next {
    Event(Event),
    Timeout,
}

struct Sim<'a, R, W> {
    t0: Instant,
    /// Virtual time since the call started.
    now: Duration,
    input: R,
    out: W,
    prompt_durations: &'a dyn Fn(&str) -> Duration,
    /// Playbacks not yet finished: (total length, barge-in).
    playing: VecDeque<(Duration, bool)>,
    /// Answers owed to the run (dial, record, webhook, stopped playback).
    events: VecDeque<Event>,
    /// Keys typed, still to press.
    keys: VecDeque<char>,
    /// The caller already answered the current question (so silence means: let it time out).
    answered: bool,
    recording: Recording,
    /// Whom a dial rings, when the caller knows the desk.
    desk: Option<DeskView<'a>>,
}

impl<R: BufRead, W: Write> Sim<'_, R, W> {
    fn instant(&self) -> Instant {
        self.t0 + self.now
    }

    fn perform(&mut self, run: &Run, actions: Vec<Action>) -> io::Result<()> {
        for action in actions {
            let t = stamp(self.now);
            match action {
                Action::Enter { node } => {
                    let kind = run.flow().node(&node).map_or("?", |n| n.node.type_name());
                    writeln!(self.out, "[{t}] -> {node} ({kind})")?;
                }
                Action::Play { prompts, barge_in } => {
                    let mut total = Duration::ZERO;
                    for p in &prompts {
                        let d = (self.prompt_durations)(p);
                        writeln!(
                            self.out,
                            "[{}]    play {p} ({})",
                            stamp(self.now + total),
                            secs(d)
                        )?;
                        total += d;
                    }
                    self.playing.push_back((total, barge_in));
                    if barge_in {
                        // A new question: the caller has not answered it yet.
                        self.answered = false;
                    }
                }
                Action::StopPlayback => {
                    if self.playing.pop_front().is_some() {
                        writeln!(self.out, "[{t}]    (prompt stopped)")?;
                        self.events.push_back(Event::PlaybackDone);
                    }
                }
                Action::Dial {
                    targets,
                    strategy,
                    timeout,
                    whisper,
                    ..
                } => {
                    let whisper = whisper
                        .map(|w| format!(", whisper {w}"))
                        .unwrap_or_default();
                    writeln!(
                        self.out,
                        "[{t}]    dial {} ({strategy:?}, ring {}{whisper})",
                        targets.join(", "),
                        format_duration(timeout)
                    )?;
                    if let Some(desk) = self.desk {
                        for line in desk(&targets, self.now) {
                            writeln!(self.out, "[{t}]    rings {line}")?;
                        }
                    }
                    let ev = self.ask_dial(timeout)?;
                    self.events.push_back(ev);
                }
                Action::Record {
                    prompt,
                    max,
                    finish_on,
                    silence,
                    min_length,
                } => {
                    if self.recording == Recording::Failed {
                        writeln!(
                            self.out,
                            "[{t}]    record: the voicemail directory cannot be written; no prompt, no message"
                        )?;
                        self.events.push_back(Event::RecordFailed);
                        continue;
                    }
                    let mut spent = Duration::ZERO;
                    if let Some(p) = prompt {
                        spent = (self.prompt_durations)(&p);
                        writeln!(self.out, "[{t}]    play {p} ({})", secs(spent))?;
                    }
                    if self.recording == Recording::Empty {
                        // A silent caller: the gate waits twice the silence window.
                        writeln!(
                            self.out,
                            "[{}]    record (max {}, at least {}): caller says nothing; no message, deleted",
                            stamp(self.now + spent),
                            format_duration(max),
                            format_duration(min_length),
                        )?;
                        self.now += spent + silence * 2;
                        self.events.push_back(Event::RecordEmpty);
                        continue;
                    }
                    writeln!(
                        self.out,
                        "[{}]    record (max {}, ends on `{finish_on}` or {} silence): caller speaks {}",
                        stamp(self.now + spent),
                        format_duration(max),
                        format_duration(silence),
                        secs(MESSAGE)
                    )?;
                    self.now += spent + MESSAGE;
                    self.events.push_back(Event::RecordDone {
                        path: Some("var/voicemail/simulated.wav".into()),
                    });
                }
                Action::PlayRecording { path } => {
                    writeln!(
                        self.out,
                        "[{t}]    play the recording {path} ({})",
                        secs(MESSAGE)
                    )?;
                    self.playing.push_back((MESSAGE, true));
                    self.answered = false;
                }
                Action::KeepRecording { path } => {
                    writeln!(self.out, "[{t}]    voicemail kept: {path}")?;
                }
                Action::DiscardRecording { path } => {
                    writeln!(self.out, "[{t}]    voicemail discarded: {path}")?;
                }
                Action::Webhook { event, vars } => {
                    let vars: Vec<String> = vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    writeln!(self.out, "[{t}]    webhook {event} {}", vars.join(" "))?;
                    self.events.push_back(Event::WebhookDone { ok: true });
                }
                Action::Hangup { reason } => {
                    writeln!(self.out, "[{t}]    hang up ({reason})")?;
                }
                Action::Log { message } => writeln!(self.out, "[{t}]    log: {message}")?,
            }
        }
        Ok(())
    }

    fn next_event(&mut self, run: &Run) -> io::Result<Next> {
        if let Some(ev) = self.events.pop_front() {
            return Ok(Next::Event(ev));
        }
        if let Some(&(length, barge_in)) = self.playing.front() {
            // A question (barge-in prompt): read the answer once it has been heard.
            self.playing.pop_front();
            self.now += length;
            if barge_in && !self.answered && !self.read_keys()? {
                return Ok(Next::Event(Event::Hangup));
            }
            return Ok(Next::Event(Event::PlaybackDone));
        }
        if let Some(c) = self.keys.pop_front() {
            self.now += KEY_GAP;
            writeln!(self.out, "[{}]    key {c}", stamp(self.now))?;
            return Ok(Next::Event(Event::Digit(c)));
        }
        let Some(deadline) = run.poll_timeout() else {
            // Nothing to wait for (cannot happen with a checked flow): end the call.
            return Ok(Next::Event(Event::Hangup));
        };
        if !self.answered {
            if !self.read_keys()? {
                return Ok(Next::Event(Event::Hangup));
            }
            if !self.keys.is_empty() {
                return self.next_event(run);
            }
        }
        self.answered = false;
        self.now = deadline.saturating_duration_since(self.t0);
        writeln!(self.out, "[{}]    (timeout)", stamp(self.now))?;
        Ok(Next::Timeout)
    }

    /// Reads a line of keys; `false` when the caller hangs up.
    fn read_keys(&mut self) -> io::Result<bool> {
        write!(
            self.out,
            "[{}] keys (Enter: none, `hangup`)> ",
            stamp(self.now)
        )?;
        self.out.flush()?;
        let Some(line) = self.read_line()? else {
            return Ok(false);
        };
        if line == "hangup" {
            writeln!(self.out, "[{}]    caller hangs up", stamp(self.now))?;
            return Ok(false);
        }
        self.answered = true;
        self.keys
            .extend(line.chars().filter(|c| !c.is_whitespace()));
        Ok(true)
    }

    fn ask_dial(&mut self, timeout: Duration) -> io::Result<Event> {
        write!(
            self.out,
            "[{}] answered? [y/N/busy/failed/hangup]> ",
            stamp(self.now)
        )?;
        self.out.flush()?;
        let line = self.read_line()?;
        let (outcome, took) = match line.as_deref() {
            None | Some("hangup") => {
                writeln!(self.out, "[{}]    caller hangs up", stamp(self.now))?;
                return Ok(Event::Hangup);
            }
            Some("y" | "Y" | "yes") => (DialOutcome::Answered, CONVERSATION),
            Some("busy") => (DialOutcome::Busy, Duration::ZERO),
            Some("failed") => (DialOutcome::Failed, Duration::ZERO),
            Some(_) => (DialOutcome::NoAnswer, timeout),
        };
        self.now += took;
        writeln!(
            self.out,
            "[{}]    dial: {}",
            stamp(self.now),
            outcome.as_str()
        )?;
        Ok(Event::DialDone(outcome))
    }

    /// The next input line, echoed (so a transcript reads like the session); `None` at EOF.
    fn read_line(&mut self) -> io::Result<Option<String>> {
        let mut line = String::new();
        if self.input.read_line(&mut line)? == 0 {
            writeln!(self.out)?;
            return Ok(None);
        }
        let line = line.trim().to_string();
        writeln!(self.out, "{line}")?;
        Ok(Some(line))
    }
}

/// How long `dir/NAME.wav` plays, from its header; `None` when it cannot be read.
pub fn wav_duration(dir: &std::path::Path, name: &str) -> Option<Duration> {
    let reader = hound::WavReader::open(dir.join(format!("{name}.wav"))).ok()?;
    let spec = reader.spec();
    let rate = u64::from(spec.sample_rate);
    if rate == 0 {
        return None;
    }
    // `duration()` counts frames (samples per channel).
    Some(Duration::from_millis(
        u64::from(reader.duration()) * 1000 / rate,
    ))
}

fn stamp(d: Duration) -> String {
    let ms = d.as_millis();
    format!(
        "{:02}:{:02}.{}",
        ms / 60_000,
        (ms / 1000) % 60,
        (ms % 1000) / 100
    )
}

fn secs(d: Duration) -> String {
    // Truncated to tenths like `stamp`, so the lengths add up to the printed times.
    let tenths = d.as_millis() / 100;
    format!("{}.{}s", tenths / 10, tenths % 10)
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn or_none(s: &str) -> &str {
    if s.is_empty() { "(unknown)" } else { s }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn shipped() -> Arc<Flow> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        match crate::flow::check(
            &root.join("callflows/after_hours.toml"),
            &root.join("prompts"),
        ) {
            Ok(f) => Arc::new(f),
            Err(d) => panic!("{d}"),
        }
    }

    fn session(facts: Facts, input: &str) -> String {
        let mut out = Vec::new();
        simulate(shipped(), facts, io::Cursor::new(input), &mut out, &|_| {
            Duration::from_secs(2)
        })
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn after_hours_agree_no_answer_voicemail() {
        let facts = Facts {
            caller: "+15550100".into(),
            called: "100".into(),
            ..Facts::default()
        };
        let out = session(facts, "5\n1\n#\n\n");
        let expected = "\
call from +15550100 to 100 (flow `after-hours`; open: no, holiday: no)
[00:00.0] -> hours (branch)
[00:00.0] -> greeting (play)
[00:00.0]    play after_hours_greeting (2.0s)
[00:02.0]    play rate_disclaimer (2.0s)
[00:04.0] -> menu (gather)
[00:04.0]    play press_5 (2.0s)
[00:06.0] keys (Enter: none, `hangup`)> 5
[00:06.3]    key 5
[00:06.3] -> terms (play)
[00:06.3]    play terms (2.0s)
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
[01:08.9] keys (Enter: none, `hangup`)> 
[01:08.9]    log: caller hung up in node `voicemail`
[01:08.9] call ended
variables: agreed=true attempts=1 called=100 caller=+15550100 dial_status=no_answer recording=var/voicemail/simulated.wav
";
        assert_eq!(out, expected, "\n{out}");
    }

    #[test]
    fn in_hours_plays_open_hours() {
        let out = session(
            Facts {
                open: true,
                ..Facts::default()
            },
            "",
        );
        assert!(out.contains("[00:00.0] -> open_line (hangup)\n[00:00.0]    play open_hours (2.0s)\n[00:02.0]    hang up (flow ended at `open_line`)\n"), "{out}");
    }

    #[test]
    fn silence_and_wrong_keys_retry_then_goodbye() {
        let out = session(Facts::default(), "\n7\n\n");
        assert!(out.contains("[00:12.0]    (timeout)\n[00:12.0]    log: gather `menu`: no input on attempt 1\n[00:12.0]    play no_input (2.0s)\n[00:14.0]    play press_5 (2.0s)"), "{out}");
        assert!(out.contains("play invalid_input"), "{out}");
        assert!(
            out.contains("log: gather `menu`: no input on the last of 3 attempts\n"),
            "{out}"
        );
        assert!(out.ends_with("[00:26.3] -> goodbye (hangup)\n[00:26.3]    play goodbye (2.0s)\n[00:28.3]    hang up (flow ended at `goodbye`)\n[00:28.3] call ended\nvariables: attempts=3\n"), "{out}");
    }

    fn session_with(recording: Recording, input: &str) -> String {
        let mut out = Vec::new();
        let facts = Facts::default();
        simulate_recording(
            shipped(),
            facts,
            recording,
            io::Cursor::new(input),
            &mut out,
            &|_| Duration::from_secs(2),
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn an_empty_voicemail_offers_to_record_again_then_no_callback() {
        let out = session_with(Recording::Empty, "5\n1\n#\n\n\n");
        let tail = out.split("-> voicemail (record)").nth(1).expect(&out);
        assert_eq!(
            tail,
            "
[00:44.9]    play leave_message (2.0s)
[00:46.9]    record (max 3m, at least 1s500ms): caller says nothing; no message, deleted
[00:56.9]    log: record `voicemail`: no message left
[00:56.9] -> no_message (gather)
[00:56.9]    play no_message (2.0s)
[00:58.9] keys (Enter: none, `hangup`)> 
[01:04.9]    (timeout)
[01:04.9]    log: gather `no_message`: no input on the last of 1 attempts
[01:04.9] -> call_again (hangup)
[01:04.9]    play call_again (2.0s)
[01:06.9]    hang up (flow ended at `call_again`)
[01:06.9] call ended
variables: agreed=true attempts=1 dial_status=no_answer
",
            "\n{out}"
        );
    }

    #[test]
    fn a_voicemail_that_cannot_be_written_rings_the_desk_again_and_promises_nothing() {
        let out = session_with(Recording::Failed, "5\n1\n#\n\n\n");
        let tail = out.split("-> voicemail (record)").nth(1).expect(&out);
        assert!(!tail.contains("leave_message"), "{out}");
        assert!(
            tail.contains(
                "record: the voicemail directory cannot be written; no prompt, no message\n"
            ),
            "{out}"
        );
        assert!(tail.contains("-> voicemail_failed (play)\n"), "{out}");
        assert!(
            tail.contains("play voicemail_unavailable (2.0s)\n"),
            "{out}"
        );
        assert!(tail.contains("dial desk (Simultaneous, ring 1m"), "{out}");
        assert!(
            tail.contains("hang up (flow ended at `call_again`)\n"),
            "{out}"
        );
    }

    #[test]
    fn caller_hangs_up() {
        let out = session(Facts::default(), "hangup\n");
        assert!(
            out.contains("caller hangs up\n[00:06.0]    log: caller hung up in node `menu`\n"),
            "{out}"
        );
    }
}
