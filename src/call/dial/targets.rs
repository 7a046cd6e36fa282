//! Who to ring and what they hear first: desk group members resolved to phones (registered
//! contacts come from the endpoint's registrar), and the whisper's prompts.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::sync::oneshot;
use tracing::info;

use super::super::memory::CallRecord;
use super::super::{Call, CallCommand, CallSettings};
use super::{Contact, DialRequest};
use crate::bridge::Member;
use crate::sip::endpoint::Credentials;

/// Each member of the target groups (once, in order) with the phones to ring.
pub(super) async fn resolve(
    call: &mut Call,
    settings: &CallSettings,
    targets: &[String],
) -> Vec<Vec<Contact>> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for group in targets {
        // Flows are checked against the groups at start; an unknown name here rings nobody.
        let members = settings.desk.groups.get(group).unwrap_or_default();
        for m in members {
            if !seen.insert(m.label().to_string()) {
                continue;
            }
            let contacts = match m {
                Member::Static { uri, destination } => vec![Contact {
                    member: uri.clone(),
                    uri: uri.clone(),
                    destination: *destination,
                    credentials: None,
                }],
                Member::User(user) => {
                    let (reply, rx) = oneshot::channel();
                    call.send(CallCommand::Contacts {
                        user: user.clone(),
                        reply,
                    });
                    let bindings = rx.await.unwrap_or_default();
                    if bindings.is_empty() {
                        info!(call_id = %call.call_id, member = %user, event = "dial_skip", "staff member not registered; skipped");
                    }
                    let password = settings.desk.passwords.get(user).cloned();
                    bindings
                        .into_iter()
                        .map(|b| Contact {
                            member: user.clone(),
                            destination: contact_address(&b.contact).unwrap_or(b.source),
                            uri: b.contact,
                            credentials: password.clone().map(|password| Credentials {
                                username: user.clone(),
                                password,
                            }),
                        })
                        .collect()
                }
            };
            out.push(contacts);
        }
    }
    out
}

/// The prompts staff hear: who is calling, then "press 1 to accept". Missing files are skipped.
pub(super) fn whisper_prompts(
    settings: &CallSettings,
    record: &CallRecord,
    req: &DialRequest,
) -> Vec<Arc<[i16]>> {
    let mut names: Vec<String> = vec!["whisper_intro".into()];
    if let Some(client) = &record.client {
        names.push(format!("client_{}", slug(&client.name)));
    }
    if record.repeat {
        names.push("whisper_repeat".into());
    }
    if let Some(ticket) = &req.ticket {
        names.push("whisper_ticket".into());
        names.extend(
            ticket
                .chars()
                .filter(char::is_ascii_digit)
                .map(|d| format!("digit_{d}")),
        );
    }
    names.push(
        req.whisper
            .clone()
            .unwrap_or_else(|| "whisper_accept".into()),
    );
    names
        .iter()
        .filter_map(|n| settings.prompts.get(n).map(|p| p.samples.clone()))
        .collect()
}

/// `Acme Corp.` → `acme_corp`: the client-name prompt's file name.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_string()
}

/// The caller's number as a SIP user part (anonymous callers show as `anonymous`).
pub(super) fn sip_user(caller: &str) -> String {
    let user: String = caller
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "+-_.".contains(*c))
        .collect();
    if user.is_empty() {
        "anonymous".into()
    } else {
        user
    }
}

/// A registered Contact's address when it is an IP literal (else the REGISTER's source).
pub(super) fn contact_address(uri: &str) -> Option<SocketAddr> {
    crate::sip::dialog::uri_socket_addr(uri)
}

/// Our address as seen from `dest` (the kernel's route choice; no packet is sent).
pub(super) fn route_ip(dest: SocketAddr) -> Option<IpAddr> {
    let bind: SocketAddr = if dest.is_ipv4() {
        "0.0.0.0:0".parse().ok()?
    } else {
        "[::]:0".parse().ok()?
    };
    let s = std::net::UdpSocket::bind(bind).ok()?;
    s.connect(dest).ok()?;
    Some(s.local_addr().ok()?.ip())
}
