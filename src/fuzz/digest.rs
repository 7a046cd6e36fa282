//! `digest`: `Authorization` and `WWW-Authenticate` values through the digest parser, the
//! server's verifier (with a fixed secret, so valid nonces can be spliced in) and the client's
//! challenge answering.

use std::time::Duration;

use super::signature::Signature;
use crate::sip::Algorithm;
use crate::sip::auth::{
    DigestInput, DigestServer, answer_challenge, compute_response, parse_digest, pick_challenge,
};

/// The verifier's idea of now, in Unix seconds.
const NOW_UNIX: u64 = 1_700_000_000;
/// The Request-URI the verified request carries (seeds put it in their `uri`).
const REQUEST_URI: &str = "sip:ivr.example.com";
/// The password of every user the verifier knows (only `alice`, unless the round trip asks).
const PASSWORD: &str = "secret";

/// Input: the first line is an `Authorization` value, verified as a REGISTER's; any further lines
/// are more challenges for `pick_challenge`, and the second and third lines are also used as a
/// user name and password for a challenge/answer/verify round trip.
///
/// Placeholders, so that mutations of a *valid* answer reach the checks behind the nonce and
/// the response hash: `$NONCE` (a fresh SHA-256 nonce of the fixed server), `$NONCE_MD5`,
/// `$NONCE_OLD` (a stale one), and `$RESPONSE` (the correct response for the other parameters,
/// computed after the rest are filled in).
///
/// Checked: whatever our client writes to answer a challenge parses with our parser, and our
/// client's answer to our server's challenge verifies, for any user name and password.
pub fn digest(data: &[u8]) -> u64 {
    let mut sig = Signature::new("digest");
    let text = String::from_utf8_lossy(data);
    let server = DigestServer::new("ivr", [7u8; 32], Duration::from_secs(300));
    let lines: Vec<&str> = text.split('\n').map(|l| l.trim_end_matches('\r')).collect();
    let first = lines.first().copied().unwrap_or("");

    let value = first
        .replace("$NONCE_MD5", &server.nonce(NOW_UNIX, Algorithm::Md5))
        .replace(
            "$NONCE_OLD",
            &server.nonce(NOW_UNIX - 600, Algorithm::Sha256),
        )
        .replace("$NONCE", &server.nonce(NOW_UNIX, Algorithm::Sha256));
    let value = fill_response(&value, "REGISTER", PASSWORD);
    match parse_digest(&value) {
        Ok(p) => sig.add((
            "params",
            p.get("qop").is_some(),
            p.get("algorithm").map(Algorithm::parse),
        )),
        Err(e) => sig.kind(&e),
    }
    let lookup = |u: &str| (u == "alice").then(|| PASSWORD.to_string());
    match server.verify("REGISTER", REQUEST_URI, Some(&value), lookup, NOW_UNIX) {
        Ok(user) => sig.add(("verified", user == "alice")),
        Err(e) => sig.kind(&e),
    }

    // The same text as a challenge from a staff phone we dial.
    match answer_challenge(
        first,
        "INVITE",
        "sip:alice@127.0.0.2",
        "alice",
        PASSWORD,
        "0a4f113b",
        1,
    ) {
        Ok(auth) => {
            let parsed = parse_digest(&auth);
            assert!(
                parsed.is_ok(),
                "our answer {auth:?} to {first:?} does not parse: {parsed:?}"
            );
            sig.add("answered");
        }
        Err(e) => sig.kind(&e),
    }
    if let Some(picked) = pick_challenge(&lines) {
        sig.add(lines.iter().position(|l| *l == picked));
    }

    if let (Some(user), Some(password)) = (lines.get(1), lines.get(2)) {
        round_trip(&server, user, password, &mut sig);
    }
    sig.finish()
}

/// Our challenge, answered by our client as `user` with `password`, must verify as `user`.
fn round_trip(server: &DigestServer, user: &str, password: &str, sig: &mut Signature) {
    for algorithm in [Algorithm::Sha256, Algorithm::Md5] {
        let challenge = server.challenge(NOW_UNIX, algorithm);
        let auth = answer_challenge(
            &challenge,
            "REGISTER",
            REQUEST_URI,
            user,
            password,
            "f00d",
            1,
        );
        let Ok(auth) = auth else {
            panic!("our client cannot answer our challenge {challenge:?}: {auth:?}");
        };
        let verified = server.verify(
            "REGISTER",
            REQUEST_URI,
            Some(&auth),
            |_| Some(password.to_string()),
            NOW_UNIX,
        );
        assert_eq!(
            verified.as_deref(),
            Ok(user),
            "round trip for user {user:?} password {password:?} via {auth:?}"
        );
    }
    sig.add("round trip");
}

/// Replaces `$RESPONSE` in an `Authorization` value with the response a client knowing
/// `password` would compute from the value's other parameters, for a request with `method`.
pub(super) fn fill_response(value: &str, method: &str, password: &str) -> String {
    if !value.contains("$RESPONSE") {
        return value.to_string();
    }
    let Ok(p) = parse_digest(&value.replace("$RESPONSE", "0")) else {
        return value.replace("$RESPONSE", "0");
    };
    let (algorithm, sess) = match p.get("algorithm") {
        None => (Algorithm::Md5, false),
        Some(a) => Algorithm::parse(a).unwrap_or((Algorithm::Md5, false)),
    };
    let qop = p.get("qop").map(|q| {
        let q = if q.eq_ignore_ascii_case("auth") {
            "auth"
        } else {
            q
        };
        (p.get("cnonce").unwrap_or(""), p.get("nc").unwrap_or(""), q)
    });
    let response = compute_response(&DigestInput {
        algorithm,
        sess,
        username: p.get("username").unwrap_or(""),
        realm: p.get("realm").unwrap_or(""),
        password,
        method,
        uri: p.get("uri").unwrap_or(""),
        nonce: p.get("nonce").unwrap_or(""),
        qop,
    });
    value.replace("$RESPONSE", &response)
}
