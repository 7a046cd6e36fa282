//! The admin pages in a real browser: headless Chromium, driven through chromedriver (WebDriver)
//! with fantoccini, against a real `ivr serve` called by sipp. It logs in through the form, sees
//! a live call appear on `/calls` without navigating, loads a voicemail's `<audio>` and reads
//! its duration, acknowledges it and sees the state change on the page and in SQLite.
//!
//! Screenshots of each step go to `target/browser-artifacts/` (or `$IVR_ARTIFACTS`). With
//! `IVR_UPDATE_SCREENSHOTS=1` the live-calls and voicemails shots are also copied to `docs/` for
//! the README.
//!
//! Needs `chromium`, `chromium-driver` and `sip-tester` (Debian); skipped without them unless
//! `IVR_REQUIRE_INTEROP=1`.

use crate::admin_support;
use crate::common;

use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use admin_support::{TOKEN, hash_token};
use common::{Ivr, free_port, manifest_dir, require_tool_from, unique_temp_dir};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// The caller sipp presents (its From user part); the live table must show it.
const CALLER: &str = "+15551230042";
/// How long the page may take to show a change it did not navigate for.
const PAGE_WAIT: Duration = Duration::from_secs(10);

/// Flags for Chromium on a machine with no network: without them it waits on connections
/// (component updates, sync, QUIC probes) that never answer. No sandbox: CI runs as root.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    // play() from WebDriver has no user gesture behind it.
    "--autoplay-policy=no-user-gesture-required",
    "--window-size=1280,720",
];

/// A running chromedriver on a loopback port, in a process group of its own; on drop the whole
/// group (chromedriver and the Chromium it started) is killed, so a failed test leaves no
/// browser behind.
struct Chromedriver {
    child: Child,
    url: String,
}

impl Chromedriver {
    fn start(log: &Path) -> Chromedriver {
        let port = free_port();
        let child = Command::new("chromedriver")
            .process_group(0)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning chromedriver: {e}"));
        let driver = Chromedriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on {addr}; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        driver
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        if let Ok(group) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) with a negative pid signals that process group: the one made for
            // this chromedriver by `process_group(0)`.
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the screenshots go: `$IVR_ARTIFACTS`, else `target/browser-artifacts`.
fn artifacts_dir() -> PathBuf {
    let dir = std::env::var_os("IVR_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_TARGET_TMPDIR"))
                .parent()
                .expect("the target dir")
                .join("browser-artifacts")
        });
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}

/// Saves a PNG of the window as `name` in the artefacts dir, and in `docs/` as `docs_name` when
/// `IVR_UPDATE_SCREENSHOTS=1`.
async fn screenshot(browser: &Client, name: &str, docs_name: Option<&str>) {
    let png = browser.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a screenshot is a PNG");
    let path = artifacts_dir().join(name);
    std::fs::write(&path, &png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    if let Some(docs_name) = docs_name
        && std::env::var("IVR_UPDATE_SCREENSHOTS").as_deref() == Ok("1")
    {
        std::fs::write(manifest_dir().join("docs").join(docs_name), &png).expect("write docs/");
    }
}

/// Runs `script` in the page until `done` accepts its result, for at most `wait`. A script that
/// fails (the page is between two loads) counts as not done yet.
async fn wait_for_script(
    browser: &Client,
    script: &str,
    wait: Duration,
    done: impl Fn(&Value) -> bool,
) -> Result<Value, Value> {
    let deadline = Instant::now() + wait;
    let mut last = Value::Null;
    loop {
        if let Ok(v) = browser.execute(script, vec![]).await {
            if done(&v) {
                return Ok(v);
            }
            last = v;
        }
        if Instant::now() >= deadline {
            return Err(last);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `ivr serve` with the voicemail-only flow, the admin server on a free port and the token.
fn start_line(dir: &Path) -> Ivr {
    let config = dir.join("ivr.toml");
    std::fs::write(
        &config,
        format!("[admin]\ntoken_hash = \"{}\"\n", hash_token(TOKEN)),
    )
    .expect("write config");
    let flow = manifest_dir().join("tests/flows/voicemail.toml");
    Ivr::start(&[
        "--config",
        config.to_str().expect("utf-8"),
        "--flow",
        flow.to_str().expect("utf-8"),
        "--admin",
        "127.0.0.1:0",
    ])
}

/// The one voicemail's (id, WAV path, acked_by) from the line's store.
fn voicemail_row(data: &Path) -> Option<(i64, PathBuf, Option<String>)> {
    let row = crate::common::db::rows(data, "SELECT id, path, acked_by FROM voicemails")
        .into_iter()
        .next()?;
    let [id, path, acked_by] = <[Option<String>; 3]>::try_from(row).ok()?;
    Some((id?.parse().ok()?, PathBuf::from(path?), acked_by))
}

/// Seconds of audio in the WAV at `path`.
fn wav_seconds(path: &Path) -> f64 {
    let wav = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    f64::from(wav.duration()) / f64::from(wav.spec().sample_rate)
}

#[tokio::test(flavor = "multi_thread")]
async fn log_in_watch_a_live_call_play_and_acknowledge_its_voicemail() {
    if !(require_tool_from("chromium", "chromium")
        && require_tool_from("chromedriver", "chromium-driver")
        && require_tool_from("sipp", "sip-tester"))
    {
        return;
    }
    let dir = unique_temp_dir("browser");
    let ivr = start_line(&dir);
    let admin = ivr.admin_addr();
    let data = ivr.dir().join("data");
    common::write_spoken_audio(ivr.dir());

    let driver = Chromedriver::start(&dir.join("chromedriver.log"));
    let profile = dir.join("chromium-profile");
    let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| f.to_string()).collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), json!({ "args": args }));
    let browser = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "a WebDriver session with Chromium: {e}; chromedriver log:\n{}",
                std::fs::read_to_string(dir.join("chromedriver.log")).unwrap_or_default()
            )
        });
    let base = format!("http://{admin}");

    // 1. Log in through the form; the login sends the browser to the voicemails page.
    browser
        .goto(&format!("{base}/calls"))
        .await
        .expect("open /calls");
    assert_eq!(
        browser.current_url().await.expect("url").path(),
        "/login",
        "a stranger is sent to the login form"
    );
    browser
        .find(Locator::Css("input[name=name]"))
        .await
        .expect("name field")
        .send_keys("alice")
        .await
        .expect("type name");
    browser
        .find(Locator::Css("input[name=token]"))
        .await
        .expect("token field")
        .send_keys(TOKEN)
        .await
        .expect("type token");
    screenshot(&browser, "01-login.png", None).await;
    browser
        .find(Locator::Css("form[action='/login'] button"))
        .await
        .expect("log in button")
        .click()
        .await
        .expect("log in");
    // The click may return before the redirect's page has loaded.
    wait_for_script(
        &browser,
        "return [location.pathname, !!document.querySelector(\"form[action='/logout']\")]",
        PAGE_WAIT,
        |v| v[0] == "/" && v[1] == true,
    )
    .await
    .unwrap_or_else(|last| panic!("not logged in on the voicemails page: {last}"));

    // 2. The live calls page, then a call: its caller appears in #live without our navigating.
    browser
        .find(Locator::LinkText("Live calls"))
        .await
        .expect("the Live calls link")
        .click()
        .await
        .expect("open live calls");
    let before = wait_for_script(
        &browser,
        "const t = document.querySelector('#live'); \
         return [location.pathname, t ? t.innerText : '']",
        PAGE_WAIT,
        |v| v[0] == "/calls",
    )
    .await
    .unwrap_or_else(|last| panic!("the Live calls link did not open /calls: {last}"));
    assert!(
        before[1].as_str().is_some_and(|t| !t.contains(CALLER)),
        "no call yet: {before}"
    );
    let call_started = Instant::now();
    let sipp_dir = ivr.dir().to_path_buf();
    let sip = ivr.sip_addr();
    let call = std::thread::spawn(move || {
        common::run_sipp_to(
            sip,
            &sipp_dir,
            "uac_voicemail_long.xml",
            &["-key", "caller", CALLER],
        )
    });
    let live = wait_for_script(
        &browser,
        "const t = document.querySelector('#live'); return t ? t.innerText : null",
        PAGE_WAIT,
        |v| v.as_str().is_some_and(|t| t.contains(CALLER)),
    )
    .await
    .unwrap_or_else(|last| {
        panic!("#live never showed {CALLER} within {PAGE_WAIT:?}; last: {last}")
    });
    let seen_after = call_started.elapsed();
    assert_eq!(
        browser.current_url().await.expect("url").path(),
        "/calls",
        "still on the live calls page: {live}"
    );
    // What the call does next reaches the same table: its record node, recording.
    wait_for_script(
        &browser,
        "const t = document.querySelector('#live'); return t ? t.innerText : null",
        PAGE_WAIT,
        |v| {
            v.as_str()
                .is_some_and(|t| t.contains("voicemail") && t.contains("recording"))
        },
    )
    .await
    .unwrap_or_else(|last| {
        panic!("#live never showed the call recording in node voicemail; last: {last}")
    });
    screenshot(&browser, "02-live-call.png", Some("admin-live-calls.png")).await;

    // 3. The call leaves a voicemail; its <audio> loads in the page and has the WAV's length.
    let run = call.join().expect("sipp thread");
    assert!(run.success(), "sipp call failed:\n{}", run.errors);
    let deadline = Instant::now() + Duration::from_secs(10);
    let (vm, path, acked_by) = loop {
        if let Some(row) = voicemail_row(&data) {
            break row;
        }
        assert!(
            Instant::now() < deadline,
            "no voicemail stored; log:\n{}",
            ivr.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(acked_by, None);
    let path = if path.is_absolute() {
        path
    } else {
        data.join(path)
    };
    let wav_len = wav_seconds(&path);
    assert!(
        wav_len > 5.0,
        "the message holds the caller's 9 s: {wav_len}"
    );

    browser
        .find(Locator::LinkText("Voicemails"))
        .await
        .expect("the Voicemails link")
        .click()
        .await
        .expect("open voicemails");
    let audio = format!("#vm-{vm} audio");
    wait_for_script(
        &browser,
        &format!("return !!document.querySelector('{audio}')"),
        PAGE_WAIT,
        |v| v == true,
    )
    .await
    .unwrap_or_else(|_| panic!("no {audio} on the voicemails page"));
    // `preload="none"` keeps the page from fetching every message; this asks for this one.
    browser
        .execute(
            "const a = document.querySelector(arguments[0]); a.preload = 'metadata'; a.load(); return a.src",
            vec![json!(audio)],
        )
        .await
        .expect("load the audio");
    let loaded = wait_for_script(
        &browser,
        &format!(
            "const a = document.querySelector('{audio}'); \
             return {{ready: a.readyState, duration: isFinite(a.duration) ? a.duration : null, \
                      error: a.error ? a.error.code + ' ' + a.error.message : null}}"
        ),
        PAGE_WAIT,
        |v| v["ready"].as_u64().is_some_and(|r| r >= 1) || !v["error"].is_null(),
    )
    .await
    .unwrap_or_else(|last| panic!("the audio element never loaded its metadata: {last}"));
    assert!(loaded["error"].is_null(), "the audio failed: {loaded}");
    let duration = loaded["duration"]
        .as_f64()
        .unwrap_or_else(|| panic!("no finite duration: {loaded}"));
    assert!(
        duration > 0.0 && (duration - wav_len).abs() <= 0.2,
        "the browser says {duration} s, the WAV holds {wav_len} s"
    );
    // Play it: the playhead moves (the browser decodes the WAV, not just its header).
    browser
        .execute(
            "const a = document.querySelector(arguments[0]); \
             a.play().catch(e => { window.playError = String(e); })",
            vec![json!(audio)],
        )
        .await
        .expect("play");
    let played = wait_for_script(
        &browser,
        &format!(
            "const a = document.querySelector('{audio}'); \
             return {{at: a.currentTime, error: window.playError || null}}"
        ),
        PAGE_WAIT,
        |v| v["at"].as_f64().is_some_and(|t| t >= 0.5) || !v["error"].is_null(),
    )
    .await
    .unwrap_or_else(|last| panic!("the voicemail never played: {last}"));
    assert!(played["error"].is_null(), "play() failed: {played}");
    eprintln!(
        "browser: live call seen {seen_after:?} after sipp started; <audio> duration {duration:.3} s, WAV {wav_len:.3} s; played to {} s",
        played["at"]
    );
    browser
        .execute(
            "const a = document.querySelector(arguments[0]); a.pause(); a.currentTime = 0",
            vec![json!(audio)],
        )
        .await
        .expect("pause");
    // The callback cell: the one whose class names the state.
    let row_state = format!(
        "const td = document.querySelector('#vm-{vm} td:is(.waiting, .overdue, .escalated, .acked)'); \
         return td ? [td.className, td.innerText] : null"
    );
    let waiting = browser.execute(&row_state, vec![]).await.expect("state");
    assert_eq!(waiting[0], "waiting", "before the ack: {waiting}");
    screenshot(&browser, "03-voicemail.png", Some("admin-voicemails.png")).await;

    // 4. Acknowledge: the row's state turns to acked, and so does the store's row.
    browser
        .find(Locator::Css(&format!(
            "#vm-{vm} form[action$='/ack'] button"
        )))
        .await
        .expect("the Acknowledge button")
        .click()
        .await
        .expect("acknowledge");
    let acked = wait_for_script(&browser, &row_state, PAGE_WAIT, |v| v[0] == "acked")
        .await
        .unwrap_or_else(|last| panic!("the row never showed acked: {last}"));
    assert!(
        acked[1].as_str().is_some_and(|t| t.contains("alice")),
        "acked by the logged-in name: {acked}"
    );
    let gone = browser
        .find(Locator::Css(&format!("#vm-{vm} form[action$='/ack']")))
        .await;
    assert!(gone.is_err(), "no Acknowledge button once acked");
    screenshot(&browser, "04-acknowledged.png", None).await;
    let (_, _, acked_by) = voicemail_row(&data).expect("the voicemail row");
    assert_eq!(acked_by.as_deref(), Some("alice"), "acked in the store");

    browser.close().await.expect("close the browser");
    drop(driver);
    let _ = std::fs::remove_dir_all(&dir);
}
