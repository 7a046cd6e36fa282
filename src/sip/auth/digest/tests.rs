use std::time::Duration;

use super::*;

// The RFC 7616 §3.9.1 example inputs. Expected values computed independently with Python's
// hashlib from the RFC's formulas (and H(A1) cross-checked with `printf '%s' ... | openssl dgst`).
const USER: &str = "Mufasa";
const REALM: &str = "http-auth@example.org";
const PASS: &str = "Circle of Life";
const URI: &str = "/dir/index.html";
const NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
const CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

const T0: u64 = 1_800_000_000;
const SIP_URI: &str = "sip:ivr.example.com";

fn rfc_input(algorithm: Algorithm) -> DigestInput<'static> {
    DigestInput {
        algorithm,
        sess: false,
        username: USER,
        realm: REALM,
        password: PASS,
        method: "GET",
        uri: URI,
        nonce: NONCE,
        qop: Some((CNONCE, "00000001", "auth")),
    }
}

fn server() -> DigestServer {
    DigestServer::new("ivr.example.com", [7u8; 32], Duration::from_secs(300))
}

fn lookup(user: &str) -> Option<String> {
    match user {
        "alice" => Some("s3cret".to_string()),
        "bob" => Some("hunter2".to_string()),
        _ => None,
    }
}

/// A client answer to a fresh challenge from `server()` at `T0`.
fn answer(alg: Algorithm, user: &str, pass: &str) -> String {
    let ch = server().challenge(T0, alg);
    answer_challenge(&ch, "REGISTER", SIP_URI, user, pass, "0a4f113b", 1).unwrap()
}

fn verify_at(auth: &str, now: u64) -> Result<String, AuthError> {
    server().verify("REGISTER", SIP_URI, Some(auth), lookup, now)
}

#[test]
fn rfc7616_vectors() {
    assert_eq!(
        Algorithm::Sha256.hash_hex(format!("{USER}:{REALM}:{PASS}").as_bytes()),
        "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232"
    );
    assert_eq!(
        Algorithm::Md5.hash_hex(format!("{USER}:{REALM}:{PASS}").as_bytes()),
        "3d78807defe7de2157e2b0b6573a855f"
    );
    assert_eq!(
        compute_response(&rfc_input(Algorithm::Sha256)),
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    );
    assert_eq!(
        compute_response(&rfc_input(Algorithm::Md5)),
        "8ca523f5e9506fed4657c9700eebdbec"
    );
    assert_eq!(
        compute_response(&rfc_input(Algorithm::Sha512_256)),
        "430d05014cecc49cab6fbe03176d41a1da86cbfe24a16580e22aaad928d960d0"
    );
}

#[test]
fn rfc2069_form_without_qop() {
    let d = DigestInput {
        realm: "testrealm@host.com",
        password: "Circle Of Life",
        nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        qop: None,
        ..rfc_input(Algorithm::Md5)
    };
    assert_eq!(compute_response(&d), "670fd8c2df070c60b045671b8b24ff02");
}

#[test]
fn client_answers_rfc_challenge() {
    let ch = format!(
        "Digest realm=\"{REALM}\", qop=\"auth, auth-int\", algorithm=SHA-256, \
         nonce=\"{NONCE}\", opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
    );
    let a = answer_challenge(&ch, "GET", URI, USER, PASS, CNONCE, 1).unwrap();
    let p = parse_digest(&a).unwrap();
    assert_eq!(
        p.get("response"),
        Some("753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1")
    );
    assert_eq!(p.get("nc"), Some("00000001"));
    assert_eq!(p.get("qop"), Some("auth"));
    assert_eq!(p.get("cnonce"), Some(CNONCE));
    assert_eq!(p.get("algorithm"), Some("SHA-256"));
    assert_eq!(
        p.get("opaque"),
        Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
    );
    assert_eq!(p.get("uri"), Some(URI));
}

#[test]
fn client_without_qop_uses_rfc2069_and_default_md5() {
    let ch = "Digest realm=\"testrealm@host.com\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\"";
    let a = answer_challenge(ch, "GET", URI, USER, "Circle Of Life", "x", 1).unwrap();
    let p = parse_digest(&a).unwrap();
    assert_eq!(p.get("response"), Some("670fd8c2df070c60b045671b8b24ff02"));
    assert_eq!(p.get("qop"), None);
    assert_eq!(p.get("nc"), None);
    assert_eq!(p.get("algorithm"), None);
}

#[test]
fn challenge_shape() {
    let s = server();
    let ch = s.challenge(T0, Algorithm::Sha256);
    let p = parse_digest(&ch).unwrap();
    assert_eq!(p.get("realm"), Some("ivr.example.com"));
    assert_eq!(p.get("algorithm"), Some("SHA-256"));
    assert_eq!(p.get("qop"), Some("auth"));
    assert_eq!(p.get("stale"), None);
    assert_eq!(p.get("nonce").unwrap().len(), 64);
    let stale = parse_digest(&s.stale_challenge(T0, Algorithm::Md5)).unwrap();
    assert_eq!(stale.get("stale"), Some("true"));
    assert_eq!(stale.get("algorithm"), Some("MD5"));
}

#[test]
fn round_trip_each_algorithm() {
    for alg in [Algorithm::Md5, Algorithm::Sha256, Algorithm::Sha512_256] {
        assert_eq!(
            verify_at(&answer(alg, "alice", "s3cret"), T0 + 10),
            Ok("alice".to_string()),
            "{alg:?}"
        );
    }
}

#[test]
fn round_trip_sess_and_rfc2069() {
    let s = server();
    let nonce = s.nonce(T0, Algorithm::Sha256);
    let ch = format!(
        "Digest realm=\"ivr.example.com\", nonce=\"{nonce}\", algorithm=SHA-256-sess, qop=\"auth\""
    );
    let a = answer_challenge(&ch, "REGISTER", SIP_URI, "bob", "hunter2", "c1", 3).unwrap();
    assert_eq!(verify_at(&a, T0), Ok("bob".to_string()));

    let ch = format!("Digest realm=\"ivr.example.com\", nonce=\"{nonce}\", algorithm=SHA-256");
    let a = answer_challenge(&ch, "REGISTER", SIP_URI, "bob", "hunter2", "c1", 1).unwrap();
    assert!(!a.contains("qop"));
    assert_eq!(verify_at(&a, T0), Ok("bob".to_string()));
}

#[test]
fn wrong_password_and_unknown_user() {
    assert_eq!(
        verify_at(&answer(Algorithm::Sha256, "alice", "guess"), T0),
        Err(AuthError::WrongPassword)
    );
    assert_eq!(
        verify_at(&answer(Algorithm::Md5, "mallory", "x"), T0),
        Err(AuthError::UnknownUser)
    );
}

#[test]
fn wrong_method_or_uri() {
    let a = answer(Algorithm::Sha256, "alice", "s3cret");
    assert_eq!(
        server().verify("INVITE", SIP_URI, Some(&a), lookup, T0),
        Err(AuthError::WrongPassword)
    );
    assert!(matches!(
        server().verify("REGISTER", "sip:other.example.com", Some(&a), lookup, T0),
        Err(AuthError::Malformed(m)) if m.contains("Request-URI")
    ));
    // Case of the URI does not matter.
    assert!(
        server()
            .verify("REGISTER", "SIP:IVR.example.com", Some(&a), lookup, T0)
            .is_ok()
    );
}

#[test]
fn stale_nonce_only_when_password_right() {
    let ok = answer(Algorithm::Sha256, "alice", "s3cret");
    assert!(verify_at(&ok, T0 + 300).is_ok());
    assert_eq!(verify_at(&ok, T0 + 301), Err(AuthError::StaleNonce));
    // From the future beyond the skew: also stale (our clock stepped back).
    assert!(verify_at(&ok, T0 - 5).is_ok());
    assert_eq!(verify_at(&ok, T0 - 6), Err(AuthError::StaleNonce));
    let bad = answer(Algorithm::Sha256, "alice", "nope");
    assert_eq!(verify_at(&bad, T0 + 1000), Err(AuthError::WrongPassword));
}

#[test]
fn tampered_or_foreign_nonce() {
    let s = server();
    let good = s.nonce(T0, Algorithm::Sha256);
    let mut forged_time = format!("{:016x}", T0 + 100);
    forged_time.push_str(&good[16..]);
    let mut flipped = good.clone();
    let last = good.len() - 1;
    flipped.replace_range(last.., if good.ends_with('0') { "1" } else { "0" });
    // Another salt under the same tag.
    let mut salted = good.clone();
    salted.replace_range(16..18, if &good[16..18] == "00" { "01" } else { "00" });
    let other_secret = DigestServer::new("ivr.example.com", [8u8; 32], Duration::from_secs(300))
        .nonce(T0, Algorithm::Sha256);
    for nonce in [
        forged_time,
        flipped,
        salted,
        other_secret,
        "abc".to_string(),
    ] {
        let ch = format!(
            "Digest realm=\"ivr.example.com\", nonce=\"{nonce}\", algorithm=SHA-256, qop=\"auth\""
        );
        let a = answer_challenge(&ch, "REGISTER", SIP_URI, "alice", "s3cret", "c", 1).unwrap();
        assert_eq!(verify_at(&a, T0), Err(AuthError::BadNonce), "{nonce}");
    }
}

#[test]
fn no_algorithm_downgrade() {
    // A nonce issued for SHA-256 answered with MD5.
    let nonce = server().nonce(T0, Algorithm::Sha256);
    let ch =
        format!("Digest realm=\"ivr.example.com\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\"");
    let a = answer_challenge(&ch, "REGISTER", SIP_URI, "alice", "s3cret", "c", 1).unwrap();
    assert_eq!(verify_at(&a, T0), Err(AuthError::BadNonce));
}

#[test]
fn realm_and_algorithm_checks() {
    let a = answer(Algorithm::Sha256, "alice", "s3cret").replace("ivr.example.com\"", "evil\"");
    assert_eq!(verify_at(&a, T0), Err(AuthError::BadRealm));
    let a = answer(Algorithm::Sha256, "alice", "s3cret").replace("SHA-256", "SHA-1");
    assert_eq!(
        verify_at(&a, T0),
        Err(AuthError::UnsupportedAlgorithm("SHA-1".to_string()))
    );
    assert_eq!(
        answer_challenge(
            "Digest realm=\"r\", nonce=\"n\", algorithm=SHA-1",
            "REGISTER",
            SIP_URI,
            "a",
            "b",
            "c",
            1
        ),
        Err(AuthError::UnsupportedAlgorithm("SHA-1".to_string()))
    );
}

#[test]
fn missing_and_malformed() {
    let s = server();
    assert_eq!(
        s.verify("REGISTER", SIP_URI, None, lookup, T0),
        Err(AuthError::Missing)
    );
    let nonce = s.nonce(T0, Algorithm::Md5);
    let cases = [
        "Basic YWxhZGRpbjpvcGVuc2VzYW1l".to_string(),
        "Digest".to_string(),
        "Digest username=\"alice".to_string(),
        "Digest username=alice realm=x".to_string(),
        "Digest username=\"a\", username=\"b\"".to_string(),
        "Digest =x".to_string(),
        "Digest username=".to_string(),
        "Digest username".to_string(),
        // Missing response.
        format!(
            "Digest username=\"alice\", realm=\"ivr.example.com\", nonce=\"{nonce}\", uri=\"{SIP_URI}\""
        ),
        // qop=auth without nc/cnonce.
        format!(
            "Digest username=\"alice\", realm=\"ivr.example.com\", nonce=\"{nonce}\", uri=\"{SIP_URI}\", response=\"00\", qop=auth"
        ),
        // Bad nc.
        format!(
            "Digest username=\"alice\", realm=\"ivr.example.com\", nonce=\"{nonce}\", uri=\"{SIP_URI}\", response=\"00\", qop=auth, cnonce=\"c\", nc=1"
        ),
        // qop not offered.
        format!(
            "Digest username=\"alice\", realm=\"ivr.example.com\", nonce=\"{nonce}\", uri=\"{SIP_URI}\", response=\"00\", qop=auth-int, cnonce=\"c\", nc=00000001"
        ),
    ];
    for c in &cases {
        assert!(
            matches!(
                s.verify("REGISTER", SIP_URI, Some(c), lookup, T0),
                Err(AuthError::Malformed(_))
            ),
            "{c}"
        );
    }
    assert!(matches!(
        answer_challenge("Digest nonce=\"n\"", "REGISTER", SIP_URI, "a", "b", "c", 1),
        Err(AuthError::Malformed(_))
    ));
    assert!(matches!(
        answer_challenge(
            "Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\"",
            "REGISTER",
            SIP_URI,
            "a",
            "b",
            "c",
            1
        ),
        Err(AuthError::Malformed(_))
    ));
}

#[test]
fn parser_quoting_and_case() {
    let p = parse_digest(
        "dIgEsT  Username=\"a, \\\"b\\\" \\\\c\" ,REALM=r ,  uri=\"sip:x@y;transport=tcp\",nc=00000001",
    )
    .unwrap();
    assert_eq!(p.get("username"), Some("a, \"b\" \\c"));
    assert_eq!(p.get("realm"), Some("r"));
    assert_eq!(p.get("URI"), Some("sip:x@y;transport=tcp"));
    assert_eq!(p.get("nc"), Some("00000001"));
}

#[test]
fn escaped_username_round_trips() {
    let lookup = |u: &str| (u == "o\"brien\\x").then(|| "pw".to_string());
    let ch = server().challenge(T0, Algorithm::Sha256);
    let a = answer_challenge(&ch, "REGISTER", SIP_URI, "o\"brien\\x", "pw", "c", 1).unwrap();
    assert_eq!(
        server().verify("REGISTER", SIP_URI, Some(&a), lookup, T0),
        Ok("o\"brien\\x".to_string())
    );
}

#[test]
fn uppercase_hex_response_accepted() {
    let a = answer(Algorithm::Md5, "alice", "s3cret");
    let p = parse_digest(&a).unwrap();
    let r = p.get("response").unwrap();
    let upper = a.replace(r, &r.to_ascii_uppercase());
    assert_eq!(verify_at(&upper, T0), Ok("alice".to_string()));
}

#[test]
fn picks_strongest_challenge() {
    let s = server();
    let md5 = s.challenge(T0, Algorithm::Md5);
    let sha = s.challenge(T0, Algorithm::Sha256);
    let chs = ["Basic realm=\"x\"", md5.as_str(), sha.as_str()];
    assert_eq!(pick_challenge(&chs), Some(sha.as_str()));
    assert_eq!(pick_challenge(&chs[..2]), Some(md5.as_str()));
    assert_eq!(pick_challenge(&chs[..1]), None);
}

#[test]
fn constant_time_eq() {
    assert!(ct_eq(b"abc", b"abc"));
    assert!(!ct_eq(b"abc", b"abd"));
    assert!(!ct_eq(b"abc", b"ab"));
}

#[test]
fn debug_hides_secret() {
    assert!(!format!("{:?}", server()).contains("7, 7"));
}

#[test]
fn a_header_of_thousands_of_params_is_refused_at_once() {
    // Found by fuzzing: 64 KiB of `a0=b,a1=b,...` made the duplicate check quadratic.
    let many: Vec<String> = (0..6000).map(|i| format!("a{i}=b")).collect();
    let value = format!("Digest {}", many.join(","));
    // Refused after MAX_PARAMS (32) parameters, not after ~18 million key comparisons.
    assert!(matches!(parse_digest(&value), Err(AuthError::Malformed(_))));
    let ok: Vec<String> = (0..32).map(|i| format!("a{i}=b")).collect();
    assert!(parse_digest(&format!("Digest {}", ok.join(","))).is_ok());
    let over: Vec<String> = (0..33).map(|i| format!("a{i}=b")).collect();
    assert!(parse_digest(&format!("Digest {}", over.join(","))).is_err());
}
