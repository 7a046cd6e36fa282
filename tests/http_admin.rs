//! The admin HTTP server of a real `ivr serve`, through real HTTP (reqwest): authentication
//! (bearer, login form with cookie and CSRF), voicemails (list, WAV download, ack), the
//! webhook outbox retry, and /health/ready following the data directory. Effects are checked
//! in the store (the CLI and the SQLite file), not only in responses.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Ivr, manifest_dir, unique_temp_dir};
use ivr::store::{CallStart, Cdr, NewVoicemail, OutboxEvent, Outcome, SqliteStore, Store};
use jiff::Timestamp;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, SET_COOKIE};

const TOKEN: &str = "test-admin-token-0123456789";

/// `ivr admin hash-token` with `token` on stdin.
fn hash_token(token: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ivr"))
        .args(["admin", "hash-token"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ivr admin hash-token");
    writeln!(child.stdin.take().expect("stdin"), "{token}").expect("write token");
    let out = child.wait_with_output().expect("hash-token output");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

/// A data directory with one voicemail (its WAV a real prompt file) and one failed outbox event
/// retried only next year. Returns (data dir, WAV path, voicemail id, outbox id).
fn seeded(dir: &Path) -> (PathBuf, PathBuf, i64, i64) {
    let data = dir.join("data");
    let wav = dir.join("message.wav");
    std::fs::copy(common::greeting_path(), &wav).expect("copy a WAV");
    let store = SqliteStore::open(&data).expect("open store");
    let now = Timestamp::now();
    let vm = store
        .add_voicemail(
            &NewVoicemail {
                call_id: "vm-call".into(),
                caller: "+15550100".into(),
                client: Some("Acme <Corp>".into()),
                ticket: Some("T-7".into()),
                path: wav.clone(),
                duration_ms: 4200,
                created_at: now,
            },
            now + jiff::SignedDuration::from_mins(20),
        )
        .expect("voicemail");
    let event = store
        .enqueue(&OutboxEvent {
            event_type: "call_ended".into(),
            call_id: Some("vm-call".into()),
            target: "default".into(),
            payload: serde_json::json!({"event": "call_ended"}),
            created_at: now,
        })
        .expect("enqueue");
    for (id, client, outcome, day) in [
        ("c-acme-vm", Some("Acme"), Outcome::Voicemail, "2026-11-02"),
        ("c-acme-br", Some("Acme"), Outcome::Bridged, "2026-11-03"),
        ("c-none-ab", None, Outcome::Abandoned, "2026-11-04"),
    ] {
        record_call(&store, id, client, outcome, day);
    }
    let next_year = now + jiff::SignedDuration::from_hours(24 * 365);
    store
        .mark_attempt_failed(event, next_year, "connection refused (seeded)")
        .expect("fail");
    (data, wav, vm, event)
}

/// A whole call started at 22:00 UTC on `day`.
fn record_call(store: &SqliteStore, id: &str, client: Option<&str>, outcome: Outcome, day: &str) {
    let started: Timestamp = format!("{day}T22:00:00Z").parse().expect("time");
    let caller = ivr::repeat::normalise("+15550199", Some("1"));
    store
        .call_started(&CallStart {
            call_id: id.into(),
            caller: caller.clone(),
            caller_raw: "+15550199".into(),
            called: "100".into(),
            client: client.map(String::from),
            started_at: started,
            after_hours: true,
            agreement: false,
            rate_multiplier: 2.0,
            repeat_policy: ivr::repeat::RepeatPolicy::default(),
        })
        .expect("start");
    store
        .call_ended(&Cdr {
            call_id: id.into(),
            caller: caller.as_str().into(),
            caller_raw: "+15550199".into(),
            called: "100".into(),
            client: client.map(String::from),
            started_at: started,
            answered_at: Some(started),
            ended_at: Some(started + jiff::SignedDuration::from_secs(60)),
            talk_seconds: 0,
            after_hours: true,
            agreement: false,
            rate_multiplier: 2.0,
            agreed_terms: true,
            digits: "=1+2".into(),
            ticket: None,
            outcome: Some(outcome),
            end_reason: "BYE from caller".into(),
            repeat: false,
            answered_by: None,
        })
        .expect("end");
}

/// `ivr serve` on the seeded data with `[admin] token_hash` and a webhook URL nobody listens on.
fn start(dir: &Path, data: &Path, extra_config: &str) -> Ivr {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let config = dir.join("ivr.toml");
    std::fs::write(
        &config,
        format!("[webhooks]\nurl = \"http://127.0.0.1:{port}/hook\"\n{extra_config}"),
    )
    .expect("write config");
    let prompts = manifest_dir().join("prompts");
    let flow = manifest_dir().join("tests/flows/greeting.toml");
    Ivr::start_in(
        dir,
        &[
            "--config",
            config.to_str().expect("utf-8"),
            "--data",
            data.to_str().expect("utf-8"),
            "--prompts",
            prompts.to_str().expect("utf-8"),
            "--flow",
            flow.to_str().expect("utf-8"),
        ],
    )
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

async fn json(resp: reqwest::Response) -> serde_json::Value {
    let status = resp.status();
    let body = resp.bytes().await.expect("body");
    serde_json::from_slice(&body).unwrap_or_else(|e| {
        panic!(
            "{status}: not JSON ({e}): {}",
            String::from_utf8_lossy(&body)
        )
    })
}

/// `ivr voicemail list --data` output.
fn voicemail_list(data: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ivr"))
        .args(["voicemail", "list", "--data"])
        .arg(data)
        .output()
        .expect("run ivr voicemail list");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// (attempts, next_attempt_at ms, last_error) of outbox row `id`, from the database file.
fn outbox_row(data: &Path, id: i64) -> (u32, i64, Option<String>) {
    let conn = rusqlite::Connection::open(data.join("ivr.db")).expect("open db");
    conn.query_row(
        "SELECT attempts, next_attempt_at, last_error FROM outbox WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .expect("outbox row")
}

#[tokio::test(flavor = "multi_thread")]
async fn api_needs_the_token_and_voicemails_play_and_ack_in_the_store() {
    let dir = unique_temp_dir("http-api");
    let (data, wav, vm, _) = seeded(&dir);
    let hash = hash_token(TOKEN);
    assert!(hash.starts_with("$argon2"), "{hash}");
    let ivr = start(&dir, &data, &format!("[admin]\ntoken_hash = \"{hash}\"\n"));
    let admin = ivr.admin_addr();
    let http = client();

    // No token, a wrong token: 401, and nothing leaks.
    let resp = http
        .get(url(admin, "/api/voicemails"))
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(!resp.text().await.expect("body").contains("+15550100"));
    let resp = http
        .get(url(admin, "/api/voicemails"))
        .header(AUTHORIZATION, "Bearer not-the-token")
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = http
        .get(url(admin, &format!("/api/voicemails/{vm}/audio")))
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "audio too");

    // The bearer token works.
    let bearer = format!("Bearer {TOKEN}");
    let list = json(
        http.get(url(admin, "/api/voicemails"))
            .header(AUTHORIZATION, &bearer)
            .send()
            .await
            .expect("GET"),
    )
    .await;
    let first = &list[0];
    assert_eq!(first["id"], vm);
    assert_eq!(first["caller"], "+15550100");
    assert_eq!(first["status"]["state"], "waiting");

    // The WAV is the file on disk, byte for byte, with its length; a range is served too.
    let resp = http
        .get(url(admin, first["audio_url"].as_str().expect("audio url")))
        .header(AUTHORIZATION, &bearer)
        .send()
        .await
        .expect("GET audio");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[CONTENT_TYPE], "audio/wav");
    let on_disk = std::fs::read(&wav).expect("read WAV");
    assert_eq!(
        resp.headers()["content-length"].to_str().expect("length"),
        on_disk.len().to_string()
    );
    assert!(
        resp.bytes().await.expect("bytes") == on_disk,
        "WAV bytes differ"
    );
    let resp = http
        .get(url(admin, &format!("/api/voicemails/{vm}/audio")))
        .header(AUTHORIZATION, &bearer)
        .header("range", "bytes=0-11")
        .send()
        .await
        .expect("GET range");
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(&resp.bytes().await.expect("bytes")[..], &on_disk[..12]);

    // Ack over the API: the store says so, as `ivr voicemail list` shows.
    assert!(voicemail_list(&data).contains("waiting, callback due by"));
    let acked = json(
        http.post(url(admin, &format!("/api/voicemails/{vm}/ack")))
            .header(AUTHORIZATION, &bearer)
            .header(CONTENT_TYPE, "application/json")
            .body(r#"{"by":"carol"}"#)
            .send()
            .await
            .expect("POST ack"),
    )
    .await;
    assert_eq!(acked["outcome"], "acked", "{acked}");
    let listed = voicemail_list(&data);
    assert!(listed.contains("acked by carol at"), "{listed}");
    let again = json(
        http.post(url(admin, &format!("/api/voicemails/{vm}/ack")))
            .header(AUTHORIZATION, &bearer)
            .send()
            .await
            .expect("POST ack"),
    )
    .await;
    assert_eq!(again["outcome"], "already_acked");
    assert_eq!(again["by"], "carol");
    let missing = http
        .post(url(admin, "/api/voicemails/999/ack"))
        .header(AUTHORIZATION, &bearer)
        .send()
        .await
        .expect("POST ack");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    // Status banner.
    let status = json(
        http.get(url(admin, "/api/status"))
            .header(AUTHORIZATION, &bearer)
            .send()
            .await
            .expect("GET status"),
    )
    .await;
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    let hours = status["hours"].as_str().expect("hours");
    assert!(
        hours.starts_with("open") || hours.starts_with("closed"),
        "{hours}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn login_form_sets_a_strict_cookie_and_forms_need_the_csrf_token() {
    let dir = unique_temp_dir("http-login");
    let (data, _, vm, outbox) = seeded(&dir);
    let hash = hash_token(TOKEN);
    let ivr = start(&dir, &data, &format!("[admin]\ntoken_hash = \"{hash}\"\n"));
    let admin = ivr.admin_addr();
    let http = client();
    let form = "application/x-www-form-urlencoded";

    // Pages send strangers to the login form.
    let resp = http.get(url(admin, "/")).send().await.expect("GET /");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], "/login");

    let resp = http
        .post(url(admin, "/login"))
        .header(CONTENT_TYPE, form)
        .body("name=alice&token=wrong")
        .send()
        .await
        .expect("POST login");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers().get(SET_COOKIE).is_none());

    let resp = http
        .post(url(admin, "/login"))
        .header(CONTENT_TYPE, form)
        .body(format!("name=alice&token={TOKEN}"))
        .send()
        .await
        .expect("POST login");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let set_cookie = resp.headers()[SET_COOKIE]
        .to_str()
        .expect("cookie")
        .to_string();
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    assert!(
        !set_cookie.contains(TOKEN),
        "the cookie never holds the token"
    );
    let cookie = set_cookie
        .split(';')
        .next()
        .expect("name=value")
        .to_string();

    let page = http
        .get(url(admin, "/"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("GET /");
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["x-frame-options"], "DENY", "no clickjacking");
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .expect("csp")
            .contains("frame-ancestors 'none'")
    );
    let html = page.text().await.expect("html");
    assert!(html.contains("Acme &lt;Corp&gt;"), "caller text is escaped");
    assert!(!html.contains("Acme <Corp>"));
    assert!(html.contains(&format!("src=\"/api/voicemails/{vm}/audio\"")));
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a CSRF field")
        .to_string();

    // The audio element's URL works with the cookie alone.
    let audio = http
        .get(url(admin, &format!("/api/voicemails/{vm}/audio")))
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("GET audio");
    assert_eq!(audio.status(), StatusCode::OK);

    // A form POST without the CSRF token (what a forged cross-site form would send) is refused
    // and changes nothing; with it, the voicemail is acknowledged by the logged-in name.
    let ack = url(admin, &format!("/voicemails/{vm}/ack"));
    for body in [String::new(), "csrf=forged".to_string()] {
        let resp = http
            .post(&ack)
            .header(COOKIE, &cookie)
            .header(CONTENT_TYPE, form)
            .body(body)
            .send()
            .await
            .expect("POST ack");
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    }
    let resp = http
        .post(url(admin, &format!("/api/voicemails/{vm}/ack")))
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("POST api ack");
    assert_eq!(
        resp.status(),
        StatusCode::FORBIDDEN,
        "the API with a cookie too"
    );
    assert!(voicemail_list(&data).contains("waiting, callback due by"));
    let resp = http
        .post(&ack)
        .header(COOKIE, &cookie)
        .header(CONTENT_TYPE, form)
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .expect("POST ack");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let listed = voicemail_list(&data);
    assert!(listed.contains("acked by alice at"), "{listed}");

    // Retry now: the row becomes due and the woken worker tries it again at once.
    let (attempts, next_at, _) = outbox_row(&data, outbox);
    assert_eq!(attempts, 1);
    assert!(next_at > Timestamp::now().as_millisecond() + 86_400_000);
    let outbox_page = http
        .get(url(admin, "/outbox"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("GET /outbox")
        .text()
        .await
        .expect("html");
    assert!(
        outbox_page.contains("connection refused (seeded)"),
        "{outbox_page}"
    );
    let resp = http
        .post(url(admin, &format!("/outbox/{outbox}/retry")))
        .header(COOKIE, &cookie)
        .header(CONTENT_TYPE, form)
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .expect("POST retry");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (attempts, next_at, error) = outbox_row(&data, outbox);
        if attempts == 2 {
            assert!(next_at < Timestamp::now().as_millisecond() + 3_600_000);
            assert_ne!(error.as_deref(), Some("connection refused (seeded)"));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the retried event was not attempted again; log:\n{}",
            ivr.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Logging out ends the session on the server.
    let resp = http
        .post(url(admin, "/logout"))
        .header(COOKIE, &cookie)
        .header(CONTENT_TYPE, form)
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .expect("POST logout");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let resp = http
        .get(url(admin, "/api/voicemails"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[test]
fn hash_token_refuses_a_short_token_and_never_prints_it() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_ivr"))
        .args(["admin", "hash-token"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ivr admin hash-token");
    writeln!(child.stdin.take().expect("stdin"), "short").expect("write");
    let out = child.wait_with_output().expect("output");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at least 16"), "{err}");
    assert!(!err.contains("short"), "{err}");
    let a = hash_token(TOKEN);
    assert_ne!(a, hash_token(TOKEN), "a fresh salt each time");
    assert!(!a.contains(TOKEN));
}

#[tokio::test(flavor = "multi_thread")]
async fn with_no_token_configured_everything_but_health_is_refused() {
    let dir = unique_temp_dir("http-none");
    let (data, ..) = seeded(&dir);
    let ivr = start(&dir, &data, "");
    let admin = ivr.admin_addr();
    let http = client();
    for path in ["/api/voicemails", "/", "/api/status"] {
        let resp = http.get(url(admin, path)).send().await.expect("GET");
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(
            resp.text()
                .await
                .expect("body")
                .contains("ivr admin hash-token")
        );
    }
    let resp = http
        .get(url(admin, "/api/voicemails"))
        .header(AUTHORIZATION, "Bearer ")
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let live = http
        .get(url(admin, "/health/live"))
        .send()
        .await
        .expect("GET");
    assert_eq!(live.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread")]
async fn ready_flips_when_the_data_directory_cannot_take_writes() {
    let dir = unique_temp_dir("http-ready");
    let (data, ..) = seeded(&dir);
    let ivr = start(&dir, &data, "");
    let admin = ivr.admin_addr();
    let http = client();
    let ready = || async {
        let resp = http
            .get(url(admin, "/health/ready"))
            .send()
            .await
            .expect("GET ready");
        let status = resp.status();
        (status, json(resp).await)
    };
    let (status, body) = ready().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let names: Vec<&str> = body["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["sip", "prompts", "data_dir", "store"]);

    // The directory is moved away and a plain file takes its name (root ignores chmod; it
    // cannot create a file inside a file): new voicemails could not be written there.
    let moved = dir.join("data.moved");
    std::fs::rename(&data, &moved).expect("move data dir");
    std::fs::write(&data, b"not a directory").expect("file in its place");
    let (status, body) = ready().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["ready"], false);
    let failing: Vec<&serde_json::Value> = body["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["ok"] == false)
        .collect();
    assert_eq!(failing.len(), 1, "{body}");
    assert_eq!(failing[0]["name"], "data_dir");
    assert!(
        failing[0]["detail"]
            .as_str()
            .expect("detail")
            .contains("cannot write in"),
        "{body}"
    );

    std::fs::remove_file(&data).expect("remove file");
    std::fs::rename(&moved, &data).expect("move back");
    let (status, body) = ready().await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_call_is_listed_while_it_is_up() {
    use common::{CallIds, UdpUa, in_dialog, invite, sdp_offer};
    let dir = unique_temp_dir("http-live");
    let config = dir.join("ivr.toml");
    std::fs::write(
        &config,
        format!("[admin]\ntoken_hash = \"{}\"\n", hash_token(TOKEN)),
    )
    .expect("config");
    let ivr = Ivr::start(&[
        "--hold-after-prompt",
        "--config",
        config.to_str().expect("utf-8"),
    ]);
    let admin = ivr.admin_addr();
    let http = client();
    let bearer = format!("Bearer {TOKEN}");
    let calls = || async {
        json(
            http.get(url(admin, "/api/calls"))
                .header(AUTHORIZATION, &bearer)
                .send()
                .await
                .expect("GET calls"),
        )
        .await
    };
    assert_eq!(calls().await, serde_json::json!([]));

    let ua = UdpUa::new(ivr.sip_addr());
    let ids = CallIds::new();
    ua.send(invite(&ua, &ids, &sdp_offer(9, "0 101")));
    let ok = loop {
        let m = ua.expect_response(&ids.call_id, |_| true, Duration::from_secs(5));
        match m.status() {
            Some(100 | 180 | 183) => continue,
            Some(200) => break m,
            other => panic!("unexpected {other:?} to INVITE:\n{}", m.text()),
        }
    };
    ua.send(in_dialog(&ua, &ids, &ok, "ACK", 1));
    let live = calls().await;
    assert_eq!(live.as_array().map(Vec::len), Some(1), "{live}");
    assert_eq!(live[0]["call_id"], ids.call_id.as_str());
    assert_eq!(live[0]["caller"], "tester");
    let page = http
        .post(url(admin, "/login"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("name=dave&token={TOKEN}"))
        .send()
        .await
        .expect("login");
    let cookie = page.headers()[SET_COOKIE]
        .to_str()
        .expect("cookie")
        .split(';')
        .next()
        .expect("cookie")
        .to_string();
    let html = http
        .get(url(admin, "/"))
        .header(COOKIE, cookie)
        .send()
        .await
        .expect("GET /")
        .text()
        .await
        .expect("html");
    assert!(html.contains("Live calls (1)"), "{html}");

    ua.send(in_dialog(&ua, &ids, &ok, "BYE", 2));
    let resp = ua.expect_response(&ids.call_id, |s| s >= 200, Duration::from_secs(5));
    assert_eq!(resp.status(), Some(200));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while calls().await != serde_json::json!([]) {
        assert!(
            std::time::Instant::now() < deadline,
            "the ended call stays listed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cdrs_filter_by_date_client_and_outcome_and_the_csv_is_the_cli_export() {
    let dir = unique_temp_dir("http-cdrs");
    let (data, ..) = seeded(&dir);
    let ivr = start(
        &dir,
        &data,
        &format!("[admin]\ntoken_hash = \"{}\"\n", hash_token(TOKEN)),
    );
    let admin = ivr.admin_addr();
    let http = client();
    let bearer = format!("Bearer {TOKEN}");
    let ids = |v: serde_json::Value| -> Vec<String> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|c| c["call_id"].as_str().expect("id").to_string())
            .collect()
    };
    let get = |q: &'static str| {
        let req = http
            .get(url(admin, &format!("/api/cdrs{q}")))
            .header(AUTHORIZATION, &bearer);
        async move { req.send().await.expect("GET cdrs") }
    };
    assert_eq!(
        ids(json(get("").await).await),
        ["c-acme-vm", "c-acme-br", "c-none-ab"]
    );
    assert_eq!(
        ids(json(get("?client=Acme").await).await),
        ["c-acme-vm", "c-acme-br"]
    );
    assert_eq!(
        ids(json(get("?client=Acme&outcome=bridged").await).await),
        ["c-acme-br"]
    );
    assert_eq!(
        ids(json(get("?from=2026-11-03&to=2026-11-04T22:00:00Z").await).await),
        ["c-acme-br"]
    );
    assert_eq!(get("?outcome=won").await.status(), StatusCode::BAD_REQUEST);

    let csv = get(".csv?from=2026-11-03").await;
    assert_eq!(csv.status(), StatusCode::OK);
    assert!(
        csv.headers()[CONTENT_TYPE]
            .to_str()
            .expect("type")
            .starts_with("text/csv")
    );
    let csv = csv.bytes().await.expect("csv");
    let cli = Command::new(env!("CARGO_BIN_EXE_ivr"))
        .args(["cdr", "export", "--from", "2026-11-03T00:00:00Z", "--data"])
        .arg(&data)
        .output()
        .expect("ivr cdr export");
    assert!(cli.status.success());
    assert_eq!(
        String::from_utf8_lossy(&csv),
        String::from_utf8_lossy(&cli.stdout)
    );
    assert!(
        String::from_utf8_lossy(&csv).contains("'=1+2"),
        "formula-safe cells"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_logins_are_throttled_per_address() {
    let dir = unique_temp_dir("http-throttle");
    let (data, ..) = seeded(&dir);
    let ivr = start(
        &dir,
        &data,
        &format!("[admin]\ntoken_hash = \"{}\"\n", hash_token(TOKEN)),
    );
    let admin = ivr.admin_addr();
    let http = client();
    let login = |token: &str| {
        http.post(url(admin, "/login"))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(format!("name=mallory&token={token}"))
            .send()
    };
    for _ in 0..5 {
        assert_eq!(
            login("guess").await.expect("login").status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let blocked = login(TOKEN).await.expect("login");
    assert_eq!(
        blocked.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "even the right token waits"
    );
    assert!(blocked.headers().contains_key("retry-after"));
    assert!(blocked.headers().get(SET_COOKIE).is_none());
    let bearer = http
        .get(url(admin, "/api/status"))
        .header(AUTHORIZATION, format!("Bearer {TOKEN}"))
        .send()
        .await
        .expect("GET");
    assert_eq!(
        bearer.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the API too"
    );
    let health = http
        .get(url(admin, "/health/live"))
        .send()
        .await
        .expect("GET");
    assert_eq!(health.status(), StatusCode::OK, "health is never throttled");
}
