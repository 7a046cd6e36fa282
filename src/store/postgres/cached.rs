//! Pooled connections that keep their prepared statements.
//!
//! The blocking client prepares an unnamed statement for every `execute` or `query` given SQL
//! text: the server parses and plans it each time, one more round trip each. A call start is
//! about 17 statements in 5 transactions, and that parsing was most of PostgreSQL's CPU per
//! call (BENCHMARKS "The same on one shared PostgreSQL"). So each pooled connection keeps the
//! statements it prepared, by their text, for as long as it lives; [`Db`] is what the store's
//! operations run their SQL through. No crate offers this for the blocking client with r2d2
//! (`deadpool-postgres` has it for the async one), hence these few lines.
//!
//! Prepared statements belong to the session, not to a transaction: one prepared inside a
//! transaction that is rolled back stays. A statement that fails for any reason empties the
//! connection's cache (the next use prepares afresh), so a plan made stale by another node's
//! migration heals by itself.

use std::collections::HashMap;

use postgres::types::ToSql;
use postgres::{Client, GenericClient, NoTls, Row, Statement};
use r2d2_postgres::PostgresConnectionManager;
use r2d2_postgres::r2d2::ManageConnection;

/// Statements a connection keeps at most; the store has a few dozen, so this only bounds a
/// future caller that would build SQL text per call.
const MAX_STATEMENTS: usize = 256;

/// A pooled connection: the client and the statements it has prepared.
pub(super) struct PgConn {
    pub(super) client: Client,
    cache: HashMap<String, Statement>,
}

/// The r2d2 manager of [`PgConn`]s: `r2d2_postgres`'s, with a statement cache per connection.
#[derive(Debug)]
pub(super) struct Manager(PostgresConnectionManager<NoTls>);

impl Manager {
    pub(super) fn new(config: postgres::Config) -> Manager {
        Manager(PostgresConnectionManager::new(config, NoTls))
    }
}

impl ManageConnection for Manager {
    type Connection = PgConn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<PgConn, postgres::Error> {
        Ok(PgConn {
            client: self.0.connect()?,
            cache: HashMap::new(),
        })
    }

    fn is_valid(&self, conn: &mut PgConn) -> Result<(), postgres::Error> {
        self.0.is_valid(&mut conn.client)
    }

    fn has_broken(&self, conn: &mut PgConn) -> bool {
        self.0.has_broken(&mut conn.client)
    }
}

impl PgConn {
    /// The client, to run a transaction or statements on, and its statement cache.
    pub(super) fn split(&mut self) -> (&mut Client, &mut HashMap<String, Statement>) {
        (&mut self.client, &mut self.cache)
    }
}

/// A client or transaction whose statements are prepared once per connection.
pub(super) struct Db<'a, C> {
    inner: &'a mut C,
    cache: &'a mut HashMap<String, Statement>,
}

impl<'a, C: GenericClient> Db<'a, C> {
    pub(super) fn new(inner: &'a mut C, cache: &'a mut HashMap<String, Statement>) -> Self {
        Db { inner, cache }
    }

    fn statement(&mut self, sql: &str) -> Result<Statement, postgres::Error> {
        if let Some(s) = self.cache.get(sql) {
            return Ok(s.clone());
        }
        let s = self.inner.prepare(sql)?;
        if self.cache.len() >= MAX_STATEMENTS {
            self.cache.clear();
        }
        self.cache.insert(sql.to_string(), s.clone());
        Ok(s)
    }

    /// The outcome of running a cached statement; a failure empties the cache (see the module).
    fn kept<T>(&mut self, r: Result<T, postgres::Error>) -> Result<T, postgres::Error> {
        if r.is_err() {
            self.cache.clear();
        }
        r
    }

    pub(super) fn execute(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, postgres::Error> {
        let st = self.statement(sql)?;
        let r = self.inner.execute(&st, params);
        self.kept(r)
    }

    pub(super) fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, postgres::Error> {
        let st = self.statement(sql)?;
        let r = self.inner.query(&st, params);
        self.kept(r)
    }

    pub(super) fn query_one(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, postgres::Error> {
        let st = self.statement(sql)?;
        let r = self.inner.query_one(&st, params);
        self.kept(r)
    }

    pub(super) fn query_opt(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, postgres::Error> {
        let st = self.statement(sql)?;
        let r = self.inner.query_opt(&st, params);
        self.kept(r)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_cluster::database;
    use super::*;

    /// Statements prepared on `c`'s session (asked by the simple protocol, which prepares
    /// nothing itself).
    fn prepared(c: &mut Client) -> String {
        let messages = c
            .simple_query("SELECT count(*) FROM pg_prepared_statements")
            .expect("count");
        messages
            .iter()
            .find_map(|m| match m {
                postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
                _ => None,
            })
            .expect("a row")
    }

    /// The same SQL twice is prepared once on a connection; a plan that another session's
    /// schema change made stale fails once, empties the cache, and the next run prepares
    /// afresh and works.
    #[test]
    fn statements_are_prepared_once_and_a_stale_one_heals() {
        let Some(url) = database() else { return };
        let mut client = Client::connect(&url, NoTls).expect("connect");
        let mut other = Client::connect(&url, NoTls).expect("connect");
        other
            .batch_execute("CREATE TABLE t (a INT); INSERT INTO t VALUES (1)")
            .expect("table");
        let mut cache = HashMap::new();
        let mut db = Db::new(&mut client, &mut cache);
        for _ in 0..3 {
            assert_eq!(db.query("SELECT * FROM t", &[]).expect("select").len(), 1);
            db.execute("UPDATE t SET a = a + $1", &[&1i32])
                .expect("update");
        }
        assert_eq!(db.cache.len(), 2);
        assert_eq!(
            prepared(db.inner),
            "2",
            "two statements, each prepared once"
        );

        other
            .batch_execute("ALTER TABLE t ADD COLUMN b INT")
            .expect("alter");
        let stale = db.query("SELECT * FROM t", &[]);
        assert!(stale.is_err(), "the cached plan returns the old row type");
        assert!(db.cache.is_empty(), "a failure empties the cache");
        let rows = db.query("SELECT * FROM t", &[]).expect("prepared afresh");
        assert_eq!((rows.len(), rows[0].len()), (1, 2));
    }
}
