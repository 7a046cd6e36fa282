//! The admin pages' security through real HTTP against a real `ivr serve`: the login form and
//! its cookie, CSRF on every form POST, logout, the login throttle, refusal with no token
//! configured, and `ivr admin hash-token`.

use crate::admin_support;
use crate::common;

use std::process::{Command, Stdio};
use std::time::Duration;

use admin_support::*;
use common::unique_temp_dir;
use jiff::Timestamp;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, SET_COOKIE};

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

#[test]
fn an_empty_admin_address_turns_the_server_off() {
    let ivr = common::Ivr::start(&["--admin", ""]);
    let log = ivr.wait_for_log(&["admin server off"], Duration::from_secs(5));
    assert!(!log.contains("admin server listening"), "{log}");
}
