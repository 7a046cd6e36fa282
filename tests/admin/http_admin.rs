//! The admin JSON API of a real `ivr serve`, through real HTTP (reqwest): token checks,
//! voicemails (list, WAV download, ack), CDR filters and CSV, live calls, and /health/ready
//! following the data directory. Effects are checked in the store (the CLI and the SQLite
//! file), not only in responses.

use crate::admin_support;
use crate::common;

use std::time::Duration;

use admin_support::*;
use common::{Ivr, unique_temp_dir};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, SET_COOKIE};

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
    // No [cluster] node in the config: the node is named after the host.
    assert_eq!(
        status["node"],
        ivr::config::ClusterConfig::default().node,
        "{status}"
    );
    let hours = status["hours"].as_str().expect("hours");
    assert!(
        hours.starts_with("open") || hours.starts_with("closed"),
        "{hours}"
    );
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
    use common::{CallIds, UdpUa, in_dialog, place_call, sdp_offer};
    let dir = unique_temp_dir("http-live");
    let config = dir.join("ivr.toml");
    std::fs::write(
        &config,
        format!("[admin]\ntoken_hash = \"{}\"\n", hash_token(TOKEN)),
    )
    .expect("config");
    let ivr = Ivr::start(&[
        "--hold-after-prompt",
        "--admin",
        "127.0.0.1:0",
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
    let ok = place_call(&ua, &ids, &sdp_offer(9, "0 101"), Duration::from_secs(5));
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
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("GET /")
        .text()
        .await
        .expect("html");
    assert!(html.contains("Live calls (1)"), "{html}");
    let calls_page = http
        .get(url(admin, "/calls"))
        .header(COOKIE, &cookie)
        .send()
        .await
        .expect("GET /calls")
        .text()
        .await
        .expect("html");
    assert!(
        calls_page.contains("http-equiv=\"refresh\""),
        "{calls_page}"
    );
    assert!(calls_page.contains("<td>tester</td>"), "{calls_page}");

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
    // The JSON carries every column of the CSV export, billing facts included.
    let all = json(get("").await).await;
    let acme_vm = &all[0];
    for column in ivr::store::CDR_COLUMNS {
        assert!(acme_vm.get(column).is_some(), "no {column} in {acme_vm}");
    }
    assert_eq!(acme_vm["agreed_terms"], true, "{acme_vm}");

    let csv = get(".csv?from=2026-11-03").await;
    assert_eq!(csv.status(), StatusCode::OK);
    assert!(
        csv.headers()[CONTENT_TYPE]
            .to_str()
            .expect("type")
            .starts_with("text/csv")
    );
    let csv = csv.bytes().await.expect("csv");
    let cli = crate::common::db::ivr_command(&data)
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

/// `/metrics` on a loopback listener needs no token, parses as Prometheus text (with a real
/// parser), and its counters move with a real call: INVITE, ACK and BYE counted by method, the
/// 200 by code, one call active while it is up and one more in `ivr_calls_total` after.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_parse_and_move_with_a_real_call() {
    use common::{CallIds, UdpUa, in_dialog, place_call, sdp_offer};
    let ivr = Ivr::start(&["--hold-after-prompt", "--admin", "127.0.0.1:0"]);
    let admin = ivr.admin_addr();
    let before = scrape(admin).await;
    let invites = [("direction", "in"), ("method", "INVITE")];
    assert_eq!(metric(&before, "ivr_sip_requests_total", &invites), 0.0);
    assert_eq!(metric(&before, "ivr_calls_active", &[]), 0.0);

    let ua = UdpUa::new(ivr.sip_addr());
    let ids = CallIds::new();
    let ok = place_call(&ua, &ids, &sdp_offer(9, "0 101"), Duration::from_secs(5));
    let during = scrape(admin).await;
    assert_eq!(metric(&during, "ivr_calls_active", &[]), 1.0);
    assert_eq!(metric(&during, "ivr_sip_requests_total", &invites), 1.0);
    let ok_out = [("direction", "out"), ("code", "200")];
    assert!(metric(&during, "ivr_sip_responses_total", &ok_out) >= 1.0);
    // The greeting's packets count while the call is still up, not in one jump at its end.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while metric(
        &scrape(admin).await,
        "ivr_rtp_packets_total",
        &[("direction", "out")],
    ) < 10.0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no RTP counted out while the greeting plays"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(metric(&scrape(admin).await, "ivr_calls_active", &[]), 1.0);

    ua.send(in_dialog(&ua, &ids, &ok, "BYE", 2));
    ua.expect_response(&ids.call_id, |s| s >= 200, Duration::from_secs(5));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let after = loop {
        let s = scrape(admin).await;
        if metric(&s, "ivr_calls_total", &[]) >= 1.0 {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "ivr_calls_total never counted the ended call"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(metric(&after, "ivr_calls_active", &[]), 0.0);
    assert_eq!(metric(&after, "ivr_calls_total", &[]), 1.0);
    let byes = [("direction", "in"), ("method", "BYE")];
    assert_eq!(metric(&after, "ivr_sip_requests_total", &byes), 1.0);
}

/// `POST /api/reload` re-reads the flow the line was started with: 200 and `ok` with the
/// changed flow named when it checks, 422 with the file:line of the error when it does not (the
/// old set keeps serving); with a login cookie it needs the CSRF token like every form.
#[tokio::test(flavor = "multi_thread")]
async fn reload_over_the_api_swaps_a_good_flow_and_refuses_a_broken_one() {
    let dir = unique_temp_dir("http-reload");
    let flow = dir.join("line.toml");
    let greeting = common::manifest_dir().join("tests/flows/greeting.toml");
    std::fs::copy(&greeting, &flow).expect("copy flow");
    let config = dir.join("ivr.toml");
    std::fs::write(
        &config,
        format!("[admin]\ntoken_hash = \"{}\"\n", hash_token(TOKEN)),
    )
    .expect("config");
    let ivr = Ivr::start(&[
        "--admin",
        "127.0.0.1:0",
        "--config",
        config.to_str().expect("utf-8"),
        "--flow",
        flow.to_str().expect("utf-8"),
    ]);
    let admin = ivr.admin_addr();
    let http = client();
    let reload = || async {
        let resp = http
            .post(url(admin, "/api/reload"))
            .header(AUTHORIZATION, format!("Bearer {TOKEN}"))
            .send()
            .await
            .expect("POST /api/reload");
        let status = resp.status();
        (status, json(resp).await)
    };
    let resp = http
        .post(url(admin, "/api/reload"))
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    let changed = std::fs::read_to_string(&greeting)
        .expect("flow")
        .replace("greeting-only", "greeting-renamed");
    std::fs::write(&flow, changed).expect("change flow");
    let (status, body) = reload().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ok"], true, "{body}");
    assert_eq!(body["generation"], 1, "{body}");
    assert_eq!(
        body["flows_changed"],
        serde_json::json!(["default"]),
        "{body}"
    );

    std::fs::write(
        &flow,
        "name = \"broken\"\nstart = \"nowhere\"\n[nodes.x]\ntype = \"play\"\n",
    )
    .expect("break flow");
    let (status, body) = reload().await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["ok"], false, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    let at = format!("{}:", flow.display());
    assert!(error.contains(&at), "the error names {at}line: {error}");
    let log = ivr.wait_for_log(&["event=\"reload\""], Duration::from_secs(5));
    assert!(log.contains("reload_requested"), "{log}");
    // The page and GET /api/reload show the same failure.
    let last = http
        .get(url(admin, "/api/reload"))
        .header(AUTHORIZATION, format!("Bearer {TOKEN}"))
        .send()
        .await
        .expect("GET /api/reload");
    let last = json(last).await;
    assert_eq!(
        (last["generation"].clone(), last["ok"].clone()),
        (2.into(), false.into()),
        "{last}"
    );
    let page = http
        .get(url(admin, "/reload"))
        .header(AUTHORIZATION, format!("Bearer {TOKEN}"))
        .send()
        .await
        .expect("GET /reload");
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.expect("page");
    assert!(
        page.contains("Reload #2") && page.contains("the previous set is still serving"),
        "{page}"
    );
    assert!(page.contains(&at), "the page names {at}line: {page}");
}

/// A reload that changes `[hours]` changes what the admin server says of them (the banner on
/// every page and `/api/status`), and a key that needs a restart is named on the reload page.
#[tokio::test(flavor = "multi_thread")]
async fn the_hours_banner_follows_a_reload_and_restart_keys_are_named() {
    let dir = unique_temp_dir("http-reload-hours");
    let config = dir.join("ivr.toml");
    let week = |hours: &str| {
        [
            "monday",
            "tuesday",
            "wednesday",
            "thursday",
            "friday",
            "saturday",
            "sunday",
        ]
        .iter()
        .map(|d| format!("{d} = \"{hours}\"\n"))
        .collect::<String>()
    };
    let token = format!("[admin]\ntoken_hash = \"{}\"\n", hash_token(TOKEN));
    std::fs::write(
        &config,
        format!(
            "{token}[hours]\ntimezone = \"UTC\"\nholidays = []\n{}",
            week("00:00-24:00")
        ),
    )
    .expect("config");
    let ivr = Ivr::start(&[
        "--admin",
        "127.0.0.1:0",
        "--config",
        config.to_str().expect("utf-8"),
    ]);
    let admin = ivr.admin_addr();
    let http = client();
    let get = |path: &'static str| {
        let http = http.clone();
        async move {
            http.get(url(admin, path))
                .header(AUTHORIZATION, format!("Bearer {TOKEN}"))
                .send()
                .await
                .expect("GET")
        }
    };
    let before = json(get("/api/status").await).await;
    assert_eq!(before["open"], true, "{before}");

    std::fs::write(
        &config,
        format!(
            "{token}[hours]\ntimezone = \"UTC\"\nholidays = []\n{}[rtp]\nports = \"41000-41999\"\n\
             [[desk.groups]]\nname = \"desk\"\nmembers = [\"sip:a@127.0.0.1:5991\", \"sip:b@127.0.0.1:5992\", \"sip:c@127.0.0.1:5993\"]\n",
            week("")
        ),
    )
    .expect("config");
    let resp = http
        .post(url(admin, "/api/reload"))
        .header(AUTHORIZATION, format!("Bearer {TOKEN}"))
        .send()
        .await
        .expect("POST /api/reload");
    let outcome = json(resp).await;
    assert_eq!(outcome["ok"], true, "{outcome}");
    let after = json(get("/api/status").await).await;
    assert_eq!(after["open"], false, "{after}");
    assert_ne!(after["hours"], before["hours"], "{after}");
    let page = get("/reload").await.text().await.expect("page");
    let banner = after["hours"].as_str().expect("hours text");
    assert!(page.contains(banner), "the banner shows {banner}: {page}");
    assert!(
        page.contains("id=\"restart-needed\"") && page.contains("rtp.ports"),
        "{page}"
    );
    // A larger desk group rings more legs per call than the open-files budget was planned for.
    assert_eq!(
        outcome["restart_needed"],
        serde_json::json!(["rtp.ports", "desk groups (open-files budget)"]),
        "{outcome}"
    );
}
