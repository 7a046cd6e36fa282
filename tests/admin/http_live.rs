//! The live calls of a real `ivr serve` through real HTTP: `/api/calls` names each call's flow
//! node and what it is doing (ringing the desk and which phone, bridged with whom), and the
//! event stream `/api/calls/events` tells of a call starting and ending as it happens.

use crate::admin_support;
use crate::common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use admin_support::*;
use common::staff::Staff;
use common::{CallIds, Ivr, UdpUa, in_dialog, manifest_dir, place_call, require_tool, sdp_offer};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde_json::Value;

const BEARER: &str = "Bearer test-admin-token-0123456789";

/// `ivr serve` with the admin API on a free port, `config` below `[admin] token_hash`, and the
/// flow `tests/flows/<flow>`.
fn start(flow: &str, config: &str) -> Ivr {
    let dir = common::unique_temp_dir("http-live");
    let path = dir.join("ivr.toml");
    std::fs::write(
        &path,
        format!("[admin]\ntoken_hash = \"{}\"\n{config}", hash_token(TOKEN)),
    )
    .expect("config");
    let flow = manifest_dir().join("tests/flows").join(flow);
    Ivr::start(&[
        "--config",
        path.to_str().expect("utf-8"),
        "--flow",
        flow.to_str().expect("utf-8"),
        "--admin",
        "127.0.0.1:0",
    ])
}

async fn calls(http: &reqwest::Client, admin: SocketAddr) -> Value {
    json(
        http.get(url(admin, "/api/calls"))
            .header(AUTHORIZATION, BEARER)
            .send()
            .await
            .expect("GET /api/calls"),
    )
    .await
}

/// Polls `/api/calls` until `pred` holds for the first call; returns that call.
async fn wait_for_call(
    http: &reqwest::Client,
    admin: SocketAddr,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        last = calls(http, admin).await;
        if let Some(c) = last.get(0).filter(|c| pred(c)) {
            return c.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no call {what} within 20 s; last /api/calls: {last}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_waiting_in_a_menu_shows_its_flow_node() {
    let ivr = start("gather.toml", "");
    let admin = ivr.admin_addr();
    let http = client();
    let ua = UdpUa::new(ivr.sip_addr());
    let ids = CallIds::new();
    let ok = place_call(&ua, &ids, &sdp_offer(9, "0 101"), Duration::from_secs(5));
    // The menu waits 30 s for a key: the call sits in node `menu`, running its flow.
    let call = wait_for_call(&http, admin, "in node menu", |c| c["node"] == "menu").await;
    assert_eq!(call["call_id"], ids.call_id.as_str(), "{call}");
    assert_eq!(call["state"], "in_flow", "{call}");
    assert_eq!(call["state_text"], "in flow", "{call}");
    assert!(call["state_since"].is_string(), "{call}");
    ua.send(in_dialog(&ua, &ids, &ok, "BYE", 2));
    let resp = ua.expect_response(&ids.call_id, |s| s >= 200, Duration::from_secs(5));
    assert_eq!(resp.status(), Some(200));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_desk_ringing_a_staff_phone_then_the_bridge_show_with_the_phone() {
    if !require_tool("sipp") {
        return;
    }
    let dir = common::unique_temp_dir("http-live-desk");
    // Rings 3 s, answers, presses 1, stays until the caller hangs up.
    let staff = Staff::start(&dir, "staff_accept_wait.xml", 3000);
    let staff_uri = staff.uri();
    let ivr = start(
        "desk.toml",
        &format!(
            "[desk]\naccept_timeout_s = 4\nringback = \"us\"\nredirect_hosts = []\n\
             [[desk.groups]]\nname = \"desk\"\nmembers = [{staff_uri:?}]\n"
        ),
    );
    let admin = ivr.admin_addr();
    let http = client();
    let (sip, ivr_dir) = (ivr.sip_addr(), ivr.dir().to_path_buf());
    // The caller stays 10 s, then hangs up.
    let caller = tokio::task::spawn_blocking(move || {
        common::run_sipp_to(sip, &ivr_dir, "uac_desk_hangup.xml", &["-d", "10000"])
    });
    let ringing = wait_for_call(&http, admin, "ringing the desk", |c| {
        c["state"] == "ringing_desk" && c["state_info"]["phones"][0].is_string()
    })
    .await;
    assert_eq!(ringing["node"], "ring_desk", "{ringing}");
    assert_eq!(
        ringing["state_info"]["targets"],
        serde_json::json!(["desk"])
    );
    assert_eq!(
        ringing["state_info"]["phones"],
        serde_json::json!([staff_uri])
    );
    assert_eq!(ringing["state_detail"], staff_uri.as_str(), "{ringing}");
    let bridged = wait_for_call(&http, admin, "bridged", |c| c["state"] == "bridged").await;
    assert_eq!(
        bridged["state_info"]["with"],
        staff_uri.as_str(),
        "{bridged}"
    );
    assert_eq!(
        bridged["state_text"],
        format!("bridged with {staff_uri}"),
        "{bridged}"
    );
    let run = caller.await.expect("caller task");
    assert!(run.success(), "caller: {}\n{}", run.errors, ivr.log());
    staff.assert_completed();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_leaving_a_voicemail_shows_recording_until_the_silence_ends_it() {
    let ivr = start("voicemail.toml", "");
    let admin = ivr.admin_addr();
    let http = client();
    let ua = UdpUa::new(ivr.sip_addr());
    let ids = CallIds::new();
    let _ok = place_call(&ua, &ids, &sdp_offer(9, "0 101"), Duration::from_secs(5));
    // After the beep the message records; this caller says nothing, so 3 s of silence end it
    // and the flow hangs up.
    let call = wait_for_call(&http, admin, "recording", |c| c["state"] == "recording").await;
    assert_eq!(call["node"], "voicemail", "{call}");
    assert_eq!(call["state_text"], "recording voicemail", "{call}");
    let bye = ua.expect_request(&ids.call_id, "BYE", Duration::from_secs(10));
    ua.send(common::ok_for(&bye));
    let deadline = Instant::now() + Duration::from_secs(5);
    while calls(&http, admin).await != serde_json::json!([]) {
        assert!(Instant::now() < deadline, "the ended call stays listed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads SSE events from `resp` until one of type `calls` satisfies `pred`; returns its data.
async fn next_calls_event(
    resp: &mut reqwest::Response,
    buf: &mut String,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // Events end with a blank line; keep-alives are comments (`:`).
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            let mut kind = "";
            let mut data = String::new();
            for line in event.lines() {
                if let Some(k) = line.strip_prefix("event:") {
                    kind = k.trim();
                } else if let Some(d) = line.strip_prefix("data:") {
                    data.push_str(d.trim_start());
                }
            }
            if kind == "calls" {
                let v: Value = serde_json::from_str(&data).expect("event data is JSON");
                if pred(&v) {
                    return v;
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, resp.chunk())
            .await
            .unwrap_or_else(|_| panic!("no event {what} within 10 s; unread: {buf:?}"))
            .expect("stream read")
            .unwrap_or_else(|| panic!("stream ended before an event {what}"));
        buf.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_event_stream_tells_of_a_call_starting_and_ending_and_needs_the_token() {
    let ivr = start("gather.toml", "");
    let admin = ivr.admin_addr();
    let http = client();
    let anonymous = http
        .get(url(admin, "/api/calls/events"))
        .send()
        .await
        .expect("GET events");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let wrong = http
        .get(url(admin, "/api/calls/events"))
        .header(AUTHORIZATION, "Bearer not-the-token")
        .send()
        .await
        .expect("GET events");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    let mut events = http
        .get(url(admin, "/api/calls/events"))
        .header(AUTHORIZATION, BEARER)
        .send()
        .await
        .expect("GET events");
    assert_eq!(events.status(), StatusCode::OK);
    assert_eq!(events.headers()[CONTENT_TYPE], "text/event-stream");
    let mut buf = String::new();
    // The snapshot comes at once: nobody on the line.
    let first = next_calls_event(&mut events, &mut buf, "at once", |_| true).await;
    assert_eq!(first["calls"], serde_json::json!([]), "{first}");

    let ua = UdpUa::new(ivr.sip_addr());
    let ids = CallIds::new();
    let ok = place_call(&ua, &ids, &sdp_offer(9, "0 101"), Duration::from_secs(5));
    let up = next_calls_event(&mut events, &mut buf, "with the call", |v| {
        v["calls"][0]["call_id"] == ids.call_id.as_str()
    })
    .await;
    assert_eq!(up["calls"][0]["caller"], "tester", "{up}");
    // Its node arrives as a change of its own (or in the same snapshot).
    next_calls_event(&mut events, &mut buf, "with node menu", |v| {
        v["calls"][0]["node"] == "menu"
    })
    .await;

    ua.send(in_dialog(&ua, &ids, &ok, "BYE", 2));
    let resp = ua.expect_response(&ids.call_id, |s| s >= 200, Duration::from_secs(5));
    assert_eq!(resp.status(), Some(200));
    let gone = next_calls_event(&mut events, &mut buf, "without the call", |v| {
        v["calls"] == serde_json::json!([])
    })
    .await;
    assert!(
        gone["generation"].as_u64() > first["generation"].as_u64(),
        "{gone} after {first}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_calls_page_loads_its_own_script_under_a_self_only_policy() {
    let ivr = start("gather.toml", "");
    let admin = ivr.admin_addr();
    let http = client();
    let js = http
        .get(url(admin, "/static/live.js"))
        .send()
        .await
        .expect("GET live.js");
    assert_eq!(js.status(), StatusCode::OK);
    let csp = js.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_string();
    assert!(
        js.headers()[CONTENT_TYPE]
            .to_str()
            .expect("type")
            .starts_with("text/javascript")
    );
    let body = js.text().await.expect("js");
    assert!(body.contains("/api/calls/events") && body.contains("textContent"));
    assert!(
        !body.contains("innerHTML"),
        "caller data must go in as text"
    );
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");

    let login = http
        .post(url(admin, "/login"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("name=dave&token={TOKEN}"))
        .send()
        .await
        .expect("login");
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .split(';')
        .next()
        .expect("cookie")
        .to_string();
    let page = http
        .get(url(admin, "/calls"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("GET /calls")
        .text()
        .await
        .expect("html");
    assert!(
        page.contains("<script src=\"/static/live.js\" defer></script>"),
        "{page}"
    );
    assert!(
        page.contains("<noscript><meta http-equiv=\"refresh\""),
        "{page}"
    );
    assert!(page.contains("<table id=\"live\">"), "{page}");
    // The browser's EventSource sends the session cookie: the stream accepts it.
    let mut events = http
        .get(url(admin, "/api/calls/events"))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("GET events");
    assert_eq!(events.status(), StatusCode::OK);
    let mut buf = String::new();
    next_calls_event(&mut events, &mut buf, "at once", |_| true).await;

    // Logged out, the session's stream ends at the next change instead of telling it.
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("csrf field");
    let out = http
        .post(url(admin, "/logout"))
        .header("cookie", &cookie)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}"))
        .send()
        .await
        .expect("logout");
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let ua = UdpUa::new(ivr.sip_addr());
    let ids = CallIds::new();
    let ok = place_call(&ua, &ids, &sdp_offer(9, "0 101"), Duration::from_secs(5));
    let mut rest = String::new();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = events.chunk().await.expect("stream read") {
            rest.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the stream stays open after logout: {rest:?}"
    );
    assert!(
        !rest.contains("tester"),
        "told a logged-out session of a call: {rest:?}"
    );
    ua.send(in_dialog(&ua, &ids, &ok, "BYE", 2));
}

/// Event streams are capped (32 open at once): the next is refused with 503 rather than piling
/// up tasks and sockets, and a stream's slot comes back when its client goes away.
#[tokio::test(flavor = "multi_thread")]
async fn event_streams_are_capped_and_a_closed_one_frees_its_slot() {
    let ivr = start("gather.toml", "");
    let admin = ivr.admin_addr();
    let http = client();
    let open = || async {
        http.get(url(admin, "/api/calls/events"))
            .header(AUTHORIZATION, BEARER)
            .send()
            .await
            .expect("GET events")
    };
    let mut streams = Vec::new();
    for _ in 0..32 {
        let s = open().await;
        assert_eq!(s.status(), StatusCode::OK);
        streams.push(s);
    }
    assert_eq!(open().await.status(), StatusCode::SERVICE_UNAVAILABLE);
    drop(streams.pop());
    // The server notices the closed connection at its next write (the keep-alive at worst).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s = open().await;
        if s.status() == StatusCode::OK {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a closed stream never gave its slot back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A burst of calls is many changes, but one stream gets at most a few snapshots a second
/// (each carries the whole list, so nothing is lost): consecutive events are spaced out and
/// the generations they carry skip the changes they folded in. The last one shows every call.
#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_changes_is_folded_into_spaced_snapshots() {
    let ivr = start("gather.toml", "");
    let admin = ivr.admin_addr();
    let mut events = client()
        .get(url(admin, "/api/calls/events"))
        .header(AUTHORIZATION, BEARER)
        .send()
        .await
        .expect("GET events");
    let mut buf = String::new();
    let first = next_calls_event(&mut events, &mut buf, "at once", |_| true).await;
    const CALLS: usize = 6;
    let sip = ivr.sip_addr();
    // Six callers at the same moment, each from its own phone, while the stream is read (so
    // each event's arrival time is real).
    let burst: Vec<_> = (0..CALLS)
        .map(|_| {
            tokio::task::spawn_blocking(move || {
                let ua = UdpUa::new(sip);
                let ids = CallIds::new();
                // A liveness deadline, not a speed bar: six calls set up at once while the
                // binary's other tests (a browser among them) share the two cores.
                place_call(&ua, &ids, &sdp_offer(9, "0 101"), Duration::from_secs(20));
                (ua, ids)
            })
        })
        .collect();
    // Every event until one shows all six calls in their menu, with when it arrived.
    let mut seen = vec![(Instant::now(), first)];
    loop {
        let v = next_calls_event(&mut events, &mut buf, "with the burst", |_| true).await;
        let done = v["calls"]
            .as_array()
            .is_some_and(|c| c.len() == CALLS && c.iter().all(|c| c["node"] == "menu"));
        seen.push((Instant::now(), v));
        if done {
            break;
        }
    }
    let generations: Vec<u64> = seen
        .iter()
        .map(|(_, v)| v["generation"].as_u64().expect("generation"))
        .collect();
    // Six calls each registered, answered and entered their node: far more changes than events.
    let changes = generations[generations.len() - 1] - generations[0];
    assert!(
        changes as usize > seen.len() - 1,
        "changes were folded: {changes} changes in {} events ({generations:?})",
        seen.len() - 1
    );
    for pair in seen[1..].windows(2) {
        let gap = pair[1].0 - pair[0].0;
        // The server spaces them 250 ms apart; delivery may bunch them a little.
        assert!(
            gap >= Duration::from_millis(150),
            "two snapshots {gap:?} apart ({generations:?})"
        );
    }
    for call in burst {
        let _kept_up_until_here = call.await.expect("call placed");
    }
}
