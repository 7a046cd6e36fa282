//! Where paths resolve, on the real binary run from a directory that holds none of ivr's files:
//! a config file's relative paths against the config's own directory, command-line paths against
//! the working directory, the built-in defaults' against the install (here: this checkout).

use crate::common;

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{CallIds, Ivr, UdpUa, in_dialog, invite, manifest_dir, ok_for, unique_temp_dir};
use ivr::media::g711::Codec;
use ivr::media::prompt::Prompt;
use ivr::media::rtp::parse;

const SIP_WAIT: Duration = Duration::from_secs(10);

/// A site laid out the way an admin would: `ROOT/etc/ivr.toml` naming `sounds/`, `flows/` and
/// `state/` next to it, and an empty `ROOT/elsewhere` to run ivr from.
struct Site {
    etc: PathBuf,
    config: PathBuf,
    elsewhere: PathBuf,
}

impl Site {
    fn new(label: &str, config: &str) -> Site {
        let root = unique_temp_dir(label);
        let etc = root.join("etc");
        let elsewhere = root.join("elsewhere");
        for dir in [etc.join("sounds"), etc.join("flows"), elsewhere.clone()] {
            std::fs::create_dir_all(&dir).expect("mkdir");
        }
        write_tone(&etc.join("sounds/hello.wav"));
        std::fs::write(
            etc.join("flows/hello.toml"),
            "name = \"hello\"\nstart = \"hello\"\n\n[nodes.hello]\ntype = \"play\"\n\
             prompt = \"hello\"\nnext = \"bye\"\n\n[nodes.bye]\ntype = \"hangup\"\n",
        )
        .expect("write flow");
        let path = etc.join("ivr.toml");
        std::fs::write(&path, config).expect("write config");
        Site {
            etc,
            config: path,
            elsewhere,
        }
    }

    fn config_arg(&self) -> &str {
        self.config.to_str().expect("utf-8 temp path")
    }

    /// `ivr ARGS` run from `elsewhere`.
    fn ivr(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_ivr"))
            .args(args)
            .current_dir(&self.elsewhere)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .expect("run ivr")
    }
}

const RELATIVE: &str = "[prompts]\ndir = \"sounds\"\n\n[flows]\ndefault = \"flows/hello.toml\"\n\n\
[data]\ndir = \"state\"\n";

/// Half a second of a 440 Hz tone: a prompt no other directory holds, so hearing it proves
/// which directory the prompts came from.
fn write_tone(path: &Path) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("create wav");
    for i in 0..4000 {
        let t = i as f64 / 8000.0;
        let s = (t * 440.0 * std::f64::consts::TAU).sin() * 8000.0;
        w.write_sample(s as i16).expect("write sample");
    }
    w.finalize().expect("finalize wav");
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Calls `ivr` (PCMU) and checks that the caller hears `prompt` sample for sample: all of it
/// when `whole` (then the line hangs up), else its first second (then the caller hangs up).
fn call_hears(ivr: &Ivr, prompt: &Prompt, whole: bool) {
    let ua = UdpUa::new(ivr.sip_addr());
    let rtp = UdpSocket::bind("127.0.0.1:0").expect("bind RTP");
    rtp.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    let ids = CallIds::new();
    let port = rtp.local_addr().expect("addr").port();
    ua.send(invite(&ua, &ids, &common::sdp_offer(port, "0")));
    let ok = loop {
        let m = ua.expect_response(&ids.call_id, |_| true, SIP_WAIT);
        match m.status() {
            Some(100 | 180) => continue,
            Some(200) => break m,
            other => panic!(
                "unexpected {other:?} to INVITE:\n{}\nlog:\n{}",
                m.text(),
                ivr.log()
            ),
        }
    };
    ua.send(in_dialog(&ua, &ids, &ok, "ACK", 1));
    let mut coded = Vec::new();
    Codec::Pcmu.encode(&prompt.samples, &mut coded);
    let mut expected = Vec::new();
    Codec::Pcmu.decode(&coded, &mut expected);
    if !whole {
        expected.truncate(8000);
    }
    let mut received = Vec::new();
    let mut buf = [0u8; 2048];
    while received.len() < expected.len() {
        let n = rtp.recv(&mut buf).unwrap_or_else(|e| {
            panic!(
                "RTP stopped after {} of {} samples: {e}; log:\n{}",
                received.len(),
                expected.len(),
                ivr.log()
            )
        });
        let pkt = parse(&buf[..n]).expect("RTP");
        Codec::Pcmu.decode(&pkt.payload, &mut received);
    }
    if let Some(i) = (0..expected.len()).find(|&i| expected[i] != received[i]) {
        panic!(
            "the caller does not hear {} from sample {i} on: expected {:?}, got {:?}",
            prompt.name,
            &expected[i..(i + 8).min(expected.len())],
            &received[i..(i + 8).min(received.len())]
        );
    }
    if whole {
        let bye = ua.expect_request(&ids.call_id, "BYE", SIP_WAIT);
        ua.send(ok_for(&bye));
    } else {
        ua.send(in_dialog(&ua, &ids, &ok, "BYE", 2));
        ua.expect_response(&ids.call_id, |status| status == 200, SIP_WAIT);
    }
    ivr.wait_for_log(&["event=\"ended\""], SIP_WAIT);
}

#[test]
fn a_config_file_s_relative_paths_resolve_against_its_directory() {
    if common::db::sqlite_only("where data.dir puts ivr.db") {
        return;
    }
    let site = Site::new("paths-config", RELATIVE);

    let out = site.ivr(&["check", "--config", site.config_arg()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("ok: 1 flows checked"), "{}", text(&out));

    let flow = site.etc.join("flows/hello.toml");
    let flow = flow.to_str().expect("utf-8");
    let out = site.ivr(&["simulate", flow, "--config", site.config_arg()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("play hello (0.5s)"), "{}", text(&out));
    let out = site.ivr(&["graph", flow, "--config", site.config_arg()]);
    assert!(out.status.success(), "{}", text(&out));

    let ivr = Ivr::start_in(&site.elsewhere, &["--config", site.config_arg()]);
    let tone = Prompt::load(&site.etc.join("sounds/hello.wav")).expect("tone loads");
    call_hears(&ivr, &tone, true);

    // The call is remembered in the config's data.dir, and nothing lands where ivr ran.
    let state = site.etc.join("state");
    assert!(
        state.join("ivr.db").is_file(),
        "no {}/ivr.db",
        state.display()
    );
    assert_eq!(common::cdr_rows(&state).len(), 1);
    let stray: Vec<_> = std::fs::read_dir(&site.elsewhere)
        .expect("list")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(
        stray.is_empty(),
        "ivr wrote into its working directory: {stray:?}"
    );
    // The admin commands find the same data directory through the same config.
    let out = site.ivr(&["voicemail", "list", "--config", site.config_arg()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "no voicemails in {}",
            state.join("ivr.db").display()
        )),
        "{}",
        text(&out)
    );
}

#[test]
fn command_line_paths_resolve_against_the_working_directory() {
    if common::db::sqlite_only("where --data puts ivr.db") {
        return;
    }
    let site = Site::new("paths-flags", RELATIVE);
    // The config's data.dir is overridden by --data, relative to where ivr runs.
    let ivr = Ivr::start_in(
        &site.elsewhere,
        &["--config", site.config_arg(), "--data", "here"],
    );
    let tone = Prompt::load(&site.etc.join("sounds/hello.wav")).expect("tone loads");
    call_hears(&ivr, &tone, true);
    assert!(site.elsewhere.join("here/ivr.db").is_file());
    assert!(!site.etc.join("state").exists());
}

#[test]
fn the_built_in_defaults_work_from_any_directory() {
    let site = Site::new("paths-builtin", "");
    // No config at all: the shipped prompts and flow are found in the install (this checkout).
    let out = site.ivr(&["check"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("ok: 1 flows checked"), "{}", text(&out));
    let data = site.elsewhere.join("data");
    // After hours, so the shipped flow starts with the greeting.
    let ivr = Ivr::start_in(
        &site.elsewhere,
        &[
            "--data",
            data.to_str().expect("utf-8"),
            "--now",
            "2026-11-27T22:30:00-05:00",
        ],
    );
    let greeting = Prompt::load(&common::greeting_path()).expect("greeting loads");
    let prompts = manifest_dir().join("prompts");
    ivr.wait_for_log(&[&format!("dir={} count=", prompts.display())], SIP_WAIT);
    call_hears(&ivr, &greeting, false);
}

#[test]
fn errors_name_the_resolved_path_and_the_key_it_came_from() {
    let site = Site::new(
        "paths-errors",
        "[prompts]\ndir = \"no-sounds\"\n[flows]\ndefault = \"flows/hello.toml\"\n",
    );
    let missing = site.etc.join("no-sounds");
    let origin = format!("prompts.dir = \"no-sounds\" in {}", site.config.display());
    for args in [
        vec![
            "serve",
            "--sip",
            "127.0.0.1:0",
            "--config",
            site.config_arg(),
        ],
        vec!["check", "--config", site.config_arg()],
    ] {
        let out = site.ivr(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        let msg = text(&out);
        assert!(
            msg.contains(&missing.display().to_string()),
            "{args:?}: {msg}"
        );
        assert!(msg.contains(&origin), "{args:?}: {msg}");
    }

    // The admin commands name the data directory they looked in, and why there.
    let site = Site::new("paths-errors-data", "[data]\ndir = \"no-data\"\n");
    let out = site.ivr(&["voicemail", "list", "--config", site.config_arg()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let msg = text(&out);
    assert!(
        msg.contains(&site.etc.join("no-data").display().to_string()),
        "{msg}"
    );
    assert!(
        msg.contains(&format!(
            "data.dir = \"no-data\" in {}",
            site.config.display()
        )),
        "{msg}"
    );

    let site = Site::new(
        "paths-errors-flow",
        "[prompts]\ndir = \"sounds\"\n[flows]\ndefault = \"flows/nope.toml\"\n",
    );
    let missing = site.etc.join("flows/nope.toml");
    let origin = format!(
        "flows.default = \"flows/nope.toml\" in {}",
        site.config.display()
    );
    for args in [
        vec![
            "serve",
            "--sip",
            "127.0.0.1:0",
            "--config",
            site.config_arg(),
        ],
        vec!["check", "--config", site.config_arg()],
    ] {
        let out = site.ivr(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        let msg = text(&out);
        assert!(
            msg.contains(&missing.display().to_string()),
            "{args:?}: {msg}"
        );
        assert!(msg.contains(&origin), "{args:?}: {msg}");
    }
}
