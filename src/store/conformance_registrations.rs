//! The conformance cases of registrations (see `conformance.rs`).

use super::super::test_support::*;
use super::super::*;
use super::Subject;

fn binding(user: &str, contact: &str, node: &str, expires: &str) -> Binding {
    Binding {
        user: user.into(),
        contact: contact.into(),
        source: "127.0.0.1:5070".parse().expect("addr"),
        transport: "udp".into(),
        path: Vec::new(),
        expires_at: t(expires),
        node: node.into(),
    }
}

pub(in crate::store) fn bindings_are_kept_per_user_and_contact_and_refreshed_in_place(s: &Subject) {
    let store = &*s.store;
    let mut a = binding(
        "alice",
        "sip:alice@10.0.0.1:5060",
        "n1",
        "2026-03-02T11:00:00Z",
    );
    a.path = vec![
        "<sip:10.0.0.9:5060;lr;received=sip:192.0.2.7:5099>".into(),
        "<sip:edge.example;lr>".into(),
    ];
    a.transport = "tcp".into();
    a.source = "[::1]:5080".parse().expect("v6");
    store.put_binding(&a).expect("put a");
    let b = binding(
        "alice",
        "sip:alice@10.0.0.2:5060",
        "n2",
        "2026-03-02T11:00:00Z",
    );
    store.put_binding(&b).expect("put b");
    store
        .put_binding(&binding(
            "bob",
            "sip:bob@10.0.0.3",
            "n1",
            "2026-03-02T11:00:00Z",
        ))
        .expect("put bob");

    let now = t("2026-03-02T10:00:00Z");
    assert_eq!(
        store.bindings("alice", now).expect("read"),
        vec![a.clone(), b.clone()],
        "every field round-trips, Path order kept"
    );

    // The phone refreshes through the other node: one row, the new node and expiry.
    let mut moved = a.clone();
    moved.node = "n2".into();
    moved.path.clear();
    moved.expires_at = t("2026-03-02T12:00:00Z");
    store.put_binding(&moved).expect("refresh");
    assert_eq!(
        store.bindings("alice", now).expect("read"),
        vec![moved.clone(), b.clone()]
    );

    store
        .remove_binding("alice", "sip:alice@10.0.0.2:5060")
        .expect("remove");
    store
        .remove_binding("alice", "sip:nobody@nowhere")
        .expect("removing an unknown binding is not an error");
    assert_eq!(store.bindings("alice", now).expect("read"), vec![moved]);
    assert_eq!(store.bindings("bob", now).expect("bob").len(), 1);
    assert!(store.bindings("carol", now).expect("carol").is_empty());

    // Another node sees them too (same database, as after a restart).
    let other = s.reopen();
    assert_eq!(other.bindings("bob", now).expect("bob").len(), 1);
}

pub(in crate::store) fn expired_bindings_are_not_returned(s: &Subject) {
    let store = &*s.store;
    store
        .put_binding(&binding("alice", "sip:a@1", "n1", "2026-03-02T10:00:00Z"))
        .expect("put");
    store
        .put_binding(&binding("alice", "sip:a@2", "n1", "2026-03-02T10:05:00Z"))
        .expect("put");
    let at = |s: &str| {
        store
            .bindings("alice", t(s))
            .expect("read")
            .into_iter()
            .map(|b| b.contact)
            .collect::<Vec<_>>()
    };
    assert_eq!(at("2026-03-02T09:59:59Z"), ["sip:a@1", "sip:a@2"]);
    assert_eq!(
        at("2026-03-02T10:00:00Z"),
        ["sip:a@2"],
        "expires_at is not live"
    );
    assert!(at("2026-03-02T10:05:00Z").is_empty());
}
