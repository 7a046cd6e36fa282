//! The staff and flow pages of a real `ivr serve`, through real HTTP: `/api/staff` and `/staff`
//! follow a staff phone that sipp registers (digest auth) and unregisters, with the desk groups
//! from the config (as a reload leaves them); `/flows` draws every loaded flow as SVG, and only
//! for a logged-in admin.

use crate::admin_support;
use crate::common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use admin_support::*;
use common::{Ivr, manifest_dir, require_tool, run_sipp, unique_temp_dir};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, SET_COOKIE};
use serde_json::Value;

/// `ivr serve` with staff users alice and bob, the desk group `desk` (alice, bob and a fixed
/// address), the greeting flow by default and the desk flow on 200 and 201.
fn start_line(dir: &Path) -> Ivr {
    write_config(dir, &hash_token(TOKEN));
    let config = dir.join("ivr.toml");
    let prompts = manifest_dir().join("prompts");
    Ivr::start_in(
        dir,
        &[
            "--config",
            config.to_str().expect("utf-8"),
            "--data",
            dir.join("data").to_str().expect("utf-8"),
            "--prompts",
            prompts.to_str().expect("utf-8"),
            "--admin",
            "127.0.0.1:0",
        ],
    )
}

/// `DIR/ivr.toml` for [`start_line`].
fn write_config(dir: &Path, hash: &str) {
    let desk_flow = manifest_dir().join("tests/flows/desk.toml");
    let greeting = manifest_dir().join("tests/flows/greeting.toml");
    std::fs::write(
        dir.join("ivr.toml"),
        format!(
            "[admin]\ntoken_hash = \"{hash}\"\n\n\
             [staff]\nalgorithms = [\"MD5\", \"SHA-256\"]\n\
             [[staff.users]]\nname = \"alice\"\npassword = \"s3cret\"\n\
             [[staff.users]]\nname = \"bob\"\npassword = \"b0bpass\"\n\n\
             [[desk.groups]]\nname = \"desk\"\nmembers = [\"alice\", \"bob\", \"sip:oncall@192.0.2.10:5060\"]\n\n\
             [flows]\ndefault = {greeting:?}\nnumbers = {{ \"200\" = {desk:?}, \"201\" = {desk:?} }}\n",
            desk = desk_flow.display().to_string(),
            greeting = greeting.display().to_string(),
        ),
    )
    .expect("write config");
}

async fn staff(admin: SocketAddr) -> Value {
    json(
        client()
            .get(url(admin, "/api/staff"))
            .header(AUTHORIZATION, format!("Bearer {TOKEN}"))
            .send()
            .await
            .expect("GET /api/staff"),
    )
    .await
}

/// `/api/staff` once `done` holds for it (the SIP thread publishes right after its 200 OK, so
/// this is quick; the wait only absorbs scheduling).
async fn staff_when(admin: SocketAddr, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let s = staff(admin).await;
        if done(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{what}: /api/staff is {s:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The desk group's member `name`.
fn member<'a>(s: &'a Value, name: &str) -> &'a Value {
    s["groups"][0]["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["member"] == name)
        .unwrap_or_else(|| panic!("no member {name} in {s:#}"))
}

/// Logs in with the token; returns the session cookie (`name=value`).
async fn login(admin: SocketAddr) -> String {
    let resp = client()
        .post(url(admin, "/login"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("name=carol&token={TOKEN}"))
        .send()
        .await
        .expect("POST /login");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    resp.headers()[SET_COOKIE]
        .to_str()
        .expect("cookie")
        .split(';')
        .next()
        .expect("name=value")
        .to_string()
}

async fn page(admin: SocketAddr, path: &str, cookie: &str) -> String {
    let resp = client()
        .get(url(admin, path))
        .header(COOKIE, cookie)
        .send()
        .await
        .expect("GET page");
    assert_eq!(resp.status(), StatusCode::OK, "{path}");
    resp.text().await.expect("body")
}

#[tokio::test(flavor = "multi_thread")]
async fn staff_list_follows_register_and_unregister() {
    if !require_tool("sipp") {
        return;
    }
    let dir = unique_temp_dir("http-staff");
    let ivr = start_line(&dir);
    let admin = ivr.admin_addr();

    let resp = client()
        .get(url(admin, "/api/staff"))
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // Before any REGISTER: no phones; alice and bob are not ringable, the fixed address is.
    let before = staff(admin).await;
    assert_eq!(before["phones"], serde_json::json!([]), "{before:#}");
    let desk = &before["groups"][0];
    assert_eq!(desk["name"], "desk");
    let order: Vec<&str> = desk["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["member"].as_str().expect("member"))
        .collect();
    assert_eq!(order, ["alice", "bob", "sip:oncall@192.0.2.10:5060"]);
    assert_eq!(member(&before, "alice")["ringable"], false);
    assert!(
        member(&before, "alice")["why"]
            .as_str()
            .expect("why")
            .contains("no live registration"),
        "{before:#}"
    );
    assert_eq!(
        member(&before, "sip:oncall@192.0.2.10:5060")["ringable"],
        true
    );
    // Both numbers run the desk flow, which rings the group at once for 20 s.
    assert_eq!(
        desk["dialled_by"],
        serde_json::json!([
            {"flow": "desk-test", "node": "ring_desk", "strategy": "simultaneous", "timeout_s": 20},
        ]),
        "{before:#}"
    );

    // alice registers a phone (digest auth) for 120 s.
    let contact_port = common::free_port().to_string();
    let contact = format!("sip:alice@127.0.0.1:{contact_port}");
    let reg = register_alice(&ivr, &contact_port, 120);
    assert!(reg.success(), "register: {}\n{}", reg.errors, ivr.log());
    let after = staff_when(admin, "alice registered", |s| {
        s["phones"].as_array().is_some_and(|p| p.len() == 1)
    })
    .await;
    let phone = &after["phones"][0];
    assert_eq!(phone["user"], "alice");
    assert_eq!(phone["contact"], contact.as_str());
    assert_eq!(phone["transport"], "UDP");
    assert!(
        phone["source"]
            .as_str()
            .expect("source")
            .starts_with("127.0.0.1:"),
        "{phone}"
    );
    let left = phone["expires_in_s"].as_u64().expect("expires");
    assert!((100..=120).contains(&left), "{phone}");
    assert_eq!(member(&after, "alice")["ringable"], true);
    assert_eq!(
        member(&after, "alice")["contacts"],
        serde_json::json!([contact])
    );
    assert_eq!(member(&after, "bob")["ringable"], false);

    // The page shows the same, escaped, to a logged-in admin.
    let cookie = login(admin).await;
    let html = page(admin, "/staff", &cookie).await;
    assert!(html.contains(&contact), "{html}");
    assert!(html.contains("desk: 2 of 3 ringable now"), "{html}");
    assert!(
        html.contains("desk-test › ring_desk: simultaneous, 20 s"),
        "{html}"
    );
    let resp = client()
        .get(url(admin, "/staff"))
        .send()
        .await
        .expect("GET /staff");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);

    // alice unregisters that phone (Expires: 0): gone, and alice is not ringable again.
    let unreg = register_alice(&ivr, &contact_port, 0);
    assert!(
        unreg.success(),
        "unregister: {}\n{}",
        unreg.errors,
        ivr.log()
    );
    let gone = staff_when(admin, "alice unregistered", |s| {
        s["phones"].as_array().is_some_and(Vec::is_empty)
    })
    .await;
    assert_eq!(member(&gone, "alice")["ringable"], false);
    assert!(
        page(admin, "/staff", &cookie)
            .await
            .contains("No staff phone is registered")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn flows_page_draws_each_loaded_flow_for_a_session_only() {
    let dir = unique_temp_dir("http-flows");
    let ivr = start_line(&dir);
    let admin = ivr.admin_addr();

    let resp = client()
        .get(url(admin, "/flows"))
        .send()
        .await
        .expect("GET /flows");
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], "/login");

    let cookie = login(admin).await;
    let html = page(admin, "/flows", &cookie).await;
    // Two flows: the default, and the desk flow once for both numbers it answers.
    let svgs: Vec<&str> = html
        .match_indices("<svg")
        .map(|(at, _)| {
            let end = html[at..].find("</svg>").expect("closed svg") + at + "</svg>".len();
            &html[at..end]
        })
        .collect();
    assert_eq!(svgs.len(), 2, "{html}");
    assert!(html.contains("answers 200, 201"), "{html}");
    let mut titles = Vec::new();
    for svg in &svgs {
        let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("{e}: {svg}"));
        titles.push(
            doc.root_element()
                .attribute("aria-label")
                .expect("label")
                .to_string(),
        );
        let nodes: Vec<&str> = doc
            .descendants()
            .filter_map(|n| n.attribute("data-name"))
            .collect();
        if titles.last().is_some_and(|t| t == "desk-test") {
            assert_eq!(nodes, ["ring_desk", "voicemail", "bye"]);
            let labels: Vec<&str> = doc
                .descendants()
                .filter(|n| n.attribute("class") == Some("edge"))
                .flat_map(|g| g.descendants().filter_map(|t| t.text()))
                .collect();
            assert!(
                labels
                    .iter()
                    .any(|l| l.split(", ").any(|l| l == "no_answer")),
                "{labels:?}"
            );
        }
    }
    titles.sort();
    assert_eq!(titles, ["desk-test", "greeting-only"]);
}

/// Desk groups come from the set serving now: a reload that adds one shows without a restart.
#[tokio::test(flavor = "multi_thread")]
async fn staff_page_shows_the_desk_groups_a_reload_installs() {
    let dir = unique_temp_dir("http-staff-reload");
    let ivr = start_line(&dir);
    let admin = ivr.admin_addr();
    let before = staff(admin).await;
    assert_eq!(
        before["groups"].as_array().map(Vec::len),
        Some(1),
        "{before:#}"
    );

    let config = dir.join("ivr.toml");
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str("\n[[desk.groups]]\nname = \"night\"\nmembers = [\"bob\"]\n");
    std::fs::write(&config, text).expect("write config");
    let resp = client()
        .post(url(admin, "/api/reload"))
        .header(AUTHORIZATION, format!("Bearer {TOKEN}"))
        .send()
        .await
        .expect("POST /api/reload");
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    let after = staff(admin).await;
    let groups: Vec<&str> = after["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .map(|g| g["name"].as_str().expect("name"))
        .collect();
    assert_eq!(groups, ["desk", "night"], "{after:#}");
    assert_eq!(after["groups"][1]["dialled_by"], serde_json::json!([]));
    let cookie = login(admin).await;
    assert!(
        page(admin, "/staff", &cookie)
            .await
            .contains("No flow rings this group.")
    );
}

/// alice's REGISTER (digest auth, password `s3cret`) of `sip:alice@127.0.0.1:PORT` for
/// `expires` seconds (0 removes it), sent by sipp.
fn register_alice(ivr: &Ivr, contact_port: &str, expires: u32) -> common::SippRun {
    let expires = expires.to_string();
    run_sipp(
        ivr,
        "register_expires.xml",
        &[
            "-s",
            "alice",
            "-au",
            "alice",
            "-ap",
            "s3cret",
            "-key",
            "contact_port",
            contact_port,
            "-key",
            "reg_expires",
            &expires,
        ],
    )
}
