//! [`RegistrationStore`] on PostgreSQL: table `registrations`, one row per (user, contact).
//! `user` is a reserved word there, hence the quotes.

use jiff::Timestamp;

use super::{Fail, PgStore, from_ms};
use crate::store::{Binding, RegistrationStore, StoreError};

impl RegistrationStore for PgStore {
    fn put_binding(&self, b: &Binding) -> Result<(), StoreError> {
        let (source, path) = (b.source.to_string(), b.path_json());
        self.write("storing a registration", |tx| {
            tx.execute(
                "INSERT INTO registrations \
                 (\"user\", contact, source, transport, path, expires_at, node) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (\"user\", contact) DO UPDATE SET source = excluded.source, \
                 transport = excluded.transport, path = excluded.path, \
                 expires_at = excluded.expires_at, node = excluded.node",
                &[
                    &b.user,
                    &b.contact,
                    &source,
                    &b.transport,
                    &path,
                    &b.expires_at.as_millisecond(),
                    &b.node,
                ],
            )?;
            Ok(())
        })
    }

    fn remove_binding(&self, user: &str, contact: &str) -> Result<(), StoreError> {
        self.write("removing a registration", |tx| {
            tx.execute(
                "DELETE FROM registrations WHERE \"user\" = $1 AND contact = $2",
                &[&user, &contact],
            )?;
            Ok(())
        })
    }

    fn bindings(&self, user: &str, now: Timestamp) -> Result<Vec<Binding>, StoreError> {
        self.read("reading registrations", |c| {
            let rows = c.query(
                "SELECT \"user\", contact, source, transport, path, expires_at, node \
                 FROM registrations WHERE \"user\" = $1 AND expires_at > $2 ORDER BY contact COLLATE \"C\"",
                &[&user, &now.as_millisecond()],
            )?;
            rows.iter()
                .map(|r| {
                    let source: String = r.try_get(2)?;
                    let path: String = r.try_get(4)?;
                    Ok(Binding {
                        user: r.try_get(0)?,
                        contact: r.try_get(1)?,
                        source: source
                            .parse()
                            .map_err(|_| Fail::Bad(format!("source address {source:?}")))?,
                        transport: r.try_get(3)?,
                        path: Binding::path_from_json(&path)
                            .ok_or_else(|| Fail::Bad(format!("path {path:?}")))?,
                        expires_at: from_ms(r.try_get(5)?)?,
                        node: r.try_get(6)?,
                    })
                })
                .collect()
        })
    }
}
