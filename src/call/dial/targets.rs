//! Who to ring and what they hear first: desk group members resolved to phones (registered
//! contacts come from the endpoint's registrar), and the whisper's prompts.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::oneshot;
use tracing::{info, warn};

use super::super::memory::CallRecord;
use super::super::{Call, CallCommand, CallSettings};
use super::{Contact, DialRequest};
use crate::bridge::Member;
use crate::sip::Credentials;
use crate::sip::Transport;

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
            // `oncall` is whoever the rota names now: that user, once (a group listing them
            // by name as well rings their phones once).
            let (m, oncall_user) = match m {
                Member::OnCall => match on_call_now(call, settings) {
                    Some(user) => (&Member::User(user.clone()), Some(user)),
                    None => continue,
                },
                m => (m, None),
            };
            if !seen.insert(m.label().to_string()) {
                continue;
            }
            let mut contacts = match m {
                Member::Static { uri, destination } => {
                    let targets = match destination {
                        Some(a) => Some(vec![*a]),
                        None => lookup(call, uri, &settings.desk.resolver).await,
                    };
                    targets
                        .and_then(|t| {
                            let (first, rest) = t.split_first()?;
                            Some(Contact {
                                member: uri.clone(),
                                uri: uri.clone(),
                                destination: *first,
                                alternates: rest.to_vec(),
                                transport: Transport::Udp,
                                credentials: None,
                                from_user: None,
                                route: Vec::new(),
                            })
                        })
                        .into_iter()
                        .collect()
                }
                Member::Number(n) => number_contact(call, settings, n)
                    .await
                    .into_iter()
                    .collect(),
                Member::User(user) => {
                    let (reply, rx) = oneshot::channel();
                    call.send(CallCommand::Contacts {
                        user: user.clone(),
                        reply,
                    });
                    let bindings = rx.await.unwrap_or_default();
                    let remote = other_nodes(call, settings, user, &bindings).await;
                    if bindings.is_empty() && remote.is_empty() {
                        info!(call_id = %call.call_id, member = %user, event = "dial_skip", "staff member not registered; skipped");
                    }
                    let password = settings.desk.passwords.get(user).cloned();
                    let credentials = password.map(|password| Credentials {
                        username: user.clone(),
                        password,
                    });
                    let mobile = on_call_mobile(call, settings, m, oncall_user.as_deref()).await;
                    bindings
                        .into_iter()
                        .map(|b| Contact {
                            member: user.clone(),
                            destination: match (b.transport, super::reach::first_hop(&b.path)) {
                                // Registered through a proxy (Path): the INVITE goes to it, with
                                // the Path as Route; over TCP, the connection it came in on.
                                (Transport::Udp, Some(hop)) => hop,
                                _ => super::reach::binding_destination(
                                    &b.contact,
                                    b.source,
                                    b.transport,
                                ),
                            },
                            alternates: Vec::new(),
                            transport: b.transport,
                            uri: b.contact,
                            credentials: credentials.clone(),
                            from_user: None,
                            route: b.path,
                        })
                        .chain(remote.into_iter().map(|r| Contact {
                            member: user.clone(),
                            uri: r.uri,
                            destination: r.destination,
                            alternates: Vec::new(),
                            transport: Transport::Udp,
                            credentials: credentials.clone(),
                            from_user: None,
                            route: r.route,
                        }))
                        .chain(mobile)
                        .collect()
                }
                // Resolved to a user above.
                Member::OnCall => Vec::new(),
            };
            // A number rings once even when it is both a `tel:` member and the on-call mobile.
            contacts.retain(|c| c.from_user.is_none() || seen.insert(c.uri.clone()));
            out.push(contacts);
        }
    }
    out
}

/// A `tel:` member's leg: through the external trunk to `sip:NUMBER@host`, with the trunk's
/// caller ID and credentials. The number comes from the config only, and is held against the
/// allow-list again here (the config check refuses others; this keeps the guard where the
/// INVITE is made). A trunk by host name is looked up here (RFC 3263) and its first target
/// rung, the others kept for failover.
async fn number_contact(call: &Call, settings: &CallSettings, number: &str) -> Option<Contact> {
    let Some(ext) = &settings.desk.external else {
        info!(call_id = %call.call_id, member = %number, event = "dial_skip", "no desk.external_trunk; external number skipped");
        return None;
    };
    if !crate::bridge::number_allowed(number, &ext.allow) {
        info!(call_id = %call.call_id, member = %number, event = "dial_skip", "number not in desk.number_allow; skipped");
        return None;
    }
    let targets = match ext.destination.cursor(&[crate::dns::Transport::Udp]).await {
        Ok(c) => c.targets().iter().map(|t| t.addr).collect::<Vec<_>>(),
        Err(e) => {
            warn!(call_id = %call.call_id, member = %number, trunk = %ext.trunk, error = %e,
                event = "dial_skip", "external trunk did not resolve; external number skipped");
            return None;
        }
    };
    let (first, rest) = targets.split_first()?;
    Some(Contact {
        member: number.to_string(),
        uri: format!("sip:{number}@{}", ext.host),
        destination: *first,
        alternates: rest.to_vec(),
        transport: Transport::Udp,
        credentials: ext.credentials.clone(),
        from_user: Some(ext.caller_id.clone()),
        route: Vec::new(),
    })
}

/// A fixed desk phone's host name looked up (RFC 3263), its targets in the order to try them;
/// `None`, logged, when it does not resolve (the member is skipped, the others still ring).
async fn lookup(
    call: &Call,
    uri: &str,
    resolver: &crate::dns::SipResolver,
) -> Option<Vec<SocketAddr>> {
    match resolver.resolve(uri, &[crate::dns::Transport::Udp]).await {
        Ok(t) => Some(t.into_iter().map(|t| t.addr).collect()),
        Err(e) => {
            warn!(call_id = %call.call_id, member = %uri, error = %e, event = "dial_skip",
                "desk phone's host name did not resolve; skipped");
            None
        }
    }
}

/// `user`'s phones registered with other nodes, from the shared store (none without a
/// store, or when it fails: the local phones still ring).
async fn other_nodes(
    call: &Call,
    settings: &CallSettings,
    user: &str,
    local: &[crate::sip::Binding],
) -> Vec<super::remote::Remote> {
    let Some(store) = &settings.memory.store else {
        return Vec::new();
    };
    let (who, now) = (user.to_string(), settings.clock.now());
    match crate::store::blocking(store, move |s| s.bindings(&who, now)).await {
        Ok(stored) => super::remote::remote_contacts(local, stored, &settings.desk.node),
        Err(e) => {
            warn!(call_id = %call.call_id, member = %user, error = %e, event = "dial_skip",
                "store: other nodes' registrations not read; ringing this node's phones only");
            Vec::new()
        }
    }
}

/// The on-call user's mobile, rung with their phones when an external trunk is set and the
/// allow-list admits it (a staff user's `mobile` is not checked against it at load: it may be
/// listed for `ivr oncall` only).
async fn on_call_mobile(
    call: &Call,
    settings: &CallSettings,
    m: &Member,
    oncall_user: Option<&str>,
) -> Option<Contact> {
    let Member::User(user) = m else { return None };
    if oncall_user != Some(user.as_str()) || settings.desk.external.is_none() {
        return None;
    }
    let mobile = settings.desk.mobiles.get(user)?;
    let mut c = number_contact(call, settings, mobile).await?;
    // Accepted from the mobile, the call was still answered by the on-call user.
    c.member = user.clone();
    Some(c)
}

/// The user on call at the call's clock, logged with why and until when (so the log of a call
/// says whom `oncall` meant even when their phone was not registered).
fn on_call_now(call: &Call, settings: &CallSettings) -> Option<String> {
    let rota = settings.desk.groups.rota();
    let shift = settings.desk.groups.shift(settings.clock.now());
    let until = shift.until.map_or_else(
        || "no change ahead".into(),
        |t| crate::oncall::text::local(rota, t),
    );
    match shift.on_call {
        Some(o) => {
            info!(call_id = %call.call_id, event = "dial_oncall", user = %o.user, why = %o.why, %until, "desk member oncall is this user now");
            Some(o.user)
        }
        None => {
            info!(call_id = %call.call_id, event = "dial_oncall", user = "", %until, "nobody is on call now; member oncall skipped");
            None
        }
    }
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
