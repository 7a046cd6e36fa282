//! Staff registrations written through to the shared store (issue 16), so a desk call on
//! another node can ring a phone that registered here. The registrar stays in memory and is
//! what this node answers from; the store is a copy for the other nodes.
//!
//! The signalling loop already publishes every binding when they change (the staff page's
//! watch channel); this task follows that channel and writes the difference on the blocking
//! pool, so a slow or failing database never holds up SIP. A write that fails is logged and
//! tried again at the next change (its binding is not marked written).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::watch;
use tracing::{debug, warn};

use super::serving::Registrations;
use crate::clock::Clock;
use crate::sip::{Binding as Local, Transport};
use crate::store::{Binding, RegistrationStore};

type Key = (String, String);

/// Follow `registrations` and write each change to `store` until the channel closes.
pub(super) fn spawn_write_through(
    store: Arc<dyn RegistrationStore>,
    node: String,
    clock: Clock,
    mut registrations: watch::Receiver<Registrations>,
) {
    tokio::spawn(async move {
        let mut written: HashMap<Key, Local> = HashMap::new();
        while registrations.changed().await.is_ok() {
            let snapshot = registrations.borrow_and_update().clone();
            let (now, wall) = (Instant::now(), clock.now());
            let next: HashMap<Key, Local> = snapshot
                .iter()
                .map(|r| {
                    (
                        (r.user.clone(), r.binding.contact.clone()),
                        r.binding.clone(),
                    )
                })
                .collect();
            let (puts, removes) = changes(&written, &next);
            let puts: Vec<(Key, Binding)> = puts
                .into_iter()
                .map(|k| {
                    let b = to_store(&k.0, &next[&k], &node, now, wall);
                    (k, b)
                })
                .collect();
            let store = store.clone();
            let done = tokio::task::spawn_blocking(move || {
                let mut ok = Vec::new();
                for (k, b) in puts {
                    match store.put_binding(&b) {
                        Ok(()) => ok.push((k, true)),
                        Err(e) => warn!(user = %k.0, contact = %k.1, error = %e, "store: registration not shared with the other nodes"),
                    }
                }
                for k in removes {
                    match store.remove_binding(&k.0, &k.1) {
                        Ok(()) => ok.push((k, false)),
                        Err(e) => warn!(user = %k.0, contact = %k.1, error = %e, "store: ended registration not removed for the other nodes"),
                    }
                }
                ok
            })
            .await
            .unwrap_or_default();
            for (k, put) in done {
                debug!(user = %k.0, contact = %k.1, put, "registration shared");
                match put {
                    true => written.insert(k.clone(), next[&k].clone()),
                    false => written.remove(&k),
                };
            }
        }
    });
}

/// What to write so the store holds `next`: the keys new or changed since `written`, and
/// the keys gone.
fn changes(written: &HashMap<Key, Local>, next: &HashMap<Key, Local>) -> (Vec<Key>, Vec<Key>) {
    let mut puts: Vec<Key> = next
        .iter()
        .filter(|(k, b)| written.get(*k) != Some(*b))
        .map(|(k, _)| k.clone())
        .collect();
    let mut removes: Vec<Key> = written
        .keys()
        .filter(|k| !next.contains_key(*k))
        .cloned()
        .collect();
    puts.sort();
    removes.sort();
    (puts, removes)
}

/// A registrar binding as the store keeps it: expiry on the wall clock (`wall` is `now`).
fn to_store(user: &str, b: &Local, node: &str, now: Instant, wall: Timestamp) -> Binding {
    let left = b.expires_at.saturating_duration_since(now);
    Binding {
        user: user.to_string(),
        contact: b.contact.clone(),
        source: b.source,
        transport: match b.transport {
            Transport::Udp => "udp",
            Transport::Tcp(_) => "tcp",
        }
        .into(),
        path: b.path.clone(),
        expires_at: wall
            .checked_add(SignedDuration::try_from(left).unwrap_or(SignedDuration::MAX))
            .unwrap_or(Timestamp::MAX),
        node: node.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn local(contact: &str, secs: u64, now: Instant) -> Local {
        Local {
            contact: contact.into(),
            expires_at: now + Duration::from_secs(secs),
            call_id: "c".into(),
            cseq: 1,
            q: None,
            source: "192.0.2.7:5062".parse().unwrap(),
            transport: Transport::Udp,
            path: vec!["<sip:192.0.2.1;lr>".into()],
        }
    }

    #[test]
    fn only_new_changed_and_gone_bindings_are_written() {
        let now = Instant::now();
        let key = |c: &str| ("alice".to_string(), c.to_string());
        let written = HashMap::from([
            (key("sip:a@1"), local("sip:a@1", 60, now)),
            (key("sip:a@2"), local("sip:a@2", 60, now)),
        ]);
        let next = HashMap::from([
            (key("sip:a@1"), local("sip:a@1", 60, now)),
            (key("sip:a@3"), local("sip:a@3", 60, now)),
        ]);
        assert_eq!(
            changes(&written, &next),
            (vec![key("sip:a@3")], vec![key("sip:a@2")])
        );
        let refreshed = HashMap::from([(key("sip:a@1"), local("sip:a@1", 120, now))]);
        assert_eq!(changes(&written, &refreshed).0, vec![key("sip:a@1")]);
    }

    #[test]
    fn the_store_row_keeps_the_path_and_expires_on_the_wall_clock() {
        let now = Instant::now();
        let wall: Timestamp = "2026-03-02T10:00:00Z".parse().unwrap();
        let b = to_store("alice", &local("sip:a@1", 90, now), "n1", now, wall);
        assert_eq!(b.expires_at, "2026-03-02T10:01:30Z".parse().unwrap());
        assert_eq!(b.path, ["<sip:192.0.2.1;lr>"]);
        assert_eq!((b.transport.as_str(), b.node.as_str()), ("udp", "n1"));
    }
}
