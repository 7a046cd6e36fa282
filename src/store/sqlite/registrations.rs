//! [`RegistrationStore`] on SQLite: table `registrations`, one row per (user, contact).

use jiff::Timestamp;
use rusqlite::Connection;

use super::SqliteStore;
use crate::store::schema::{Fail, bad_value, from_ms};
use crate::store::{Binding, RegistrationStore, StoreError};

impl RegistrationStore for SqliteStore {
    fn put_binding(&self, b: &Binding) -> Result<(), StoreError> {
        let b = b.clone();
        self.write("storing a registration", move |c: &Connection| {
            c.execute(
                "INSERT INTO registrations \
                 (user, contact, source, transport, path, expires_at, node) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT (user, contact) DO UPDATE SET source = excluded.source, \
                 transport = excluded.transport, path = excluded.path, \
                 expires_at = excluded.expires_at, node = excluded.node",
                rusqlite::params![
                    b.user,
                    b.contact,
                    b.source.to_string(),
                    b.transport,
                    b.path_json(),
                    b.expires_at.as_millisecond(),
                    b.node,
                ],
            )?;
            Ok(())
        })
    }

    fn remove_binding(&self, user: &str, contact: &str) -> Result<(), StoreError> {
        let (user, contact) = (user.to_string(), contact.to_string());
        self.write("removing a registration", move |c: &Connection| {
            c.execute(
                "DELETE FROM registrations WHERE user = ?1 AND contact = ?2",
                rusqlite::params![user, contact],
            )?;
            Ok(())
        })
    }

    fn bindings(&self, user: &str, now: Timestamp) -> Result<Vec<Binding>, StoreError> {
        self.read("reading registrations", |c| {
            let mut stmt = c.prepare(
                "SELECT user, contact, source, transport, path, expires_at, node \
                 FROM registrations WHERE user = ?1 AND expires_at > ?2 ORDER BY contact",
            )?;
            let rows = stmt.query_map(rusqlite::params![user, now.as_millisecond()], |r| {
                let source: String = r.get(2)?;
                let path: String = r.get(4)?;
                Ok(Binding {
                    user: r.get(0)?,
                    contact: r.get(1)?,
                    source: source
                        .parse()
                        .map_err(|_| bad_value(2, format!("source address {source:?}")))?,
                    transport: r.get(3)?,
                    path: Binding::path_from_json(&path)
                        .ok_or_else(|| bad_value(4, format!("path {path:?}")))?,
                    expires_at: from_ms(r.get(5)?, 5)?,
                    node: r.get(6)?,
                })
            })?;
            rows.collect::<Result<Vec<_>, _>>().map_err(Fail::Sql)
        })
    }
}
