//! The SQL both backends run, written once.
//!
//! Each store trait whose statements read the same in SQLite and
//! PostgreSQL is implemented here, once, for every [`Backend`]. The SQL
//! stays plain SQL in the dialect both accept: `$1`-style parameters
//! (sqlx's SQLite driver binds `$N` by number), `ON CONFLICT`,
//! `RETURNING`, `true`/`false`, `CAST(x AS BIGINT)`. What genuinely differs
//! (claims with `FOR UPDATE SKIP LOCKED`, advisory locks, `NOTIFY`, one
//! writer pool or many) stays in `sqlite/` and `postgres/`, reached
//! through the [`Backend`] trait's hooks.
//!
//! sqlx's generic API needs a set of bounds on the database type (its
//! connections execute queries, our column types encode and decode); Rust
//! does not carry such bounds from a trait to its users, so the
//! [`for_every_backend!`] macro writes them on each shared `impl`.

mod accounts;
pub(super) mod completions;
mod cycle;
pub(super) mod deliveries;
mod erasure;
pub(super) mod events;
pub(super) mod governance;
pub(super) mod outbound;
mod plugins;
mod queries;
mod recordings;
mod state;
pub(super) mod status;
mod tenants;
mod webhooks;

use super::{StoreError, StoreResult};
use futures::future::BoxFuture;
use sqlx::{Database, Pool};

/// A connection of database `DB` (a transaction derefs to one).
pub(super) type Conn<DB> = <DB as Database>::Connection;
/// A row of database `DB`.
pub(super) type DbRow<DB> = <DB as Database>::Row;

/// What differs between the two SQL dialects, on the sqlx database type:
/// fragments the shared statements splice in, and locks only several
/// nodes on one database need.
pub trait Dialect: Database {
    /// The column that orders `message_status` rows as they were recorded
    /// (SQLite's `rowid`, PostgreSQL's identity column).
    const STATUS_RECORD_ORDER: &'static str;
    /// Ends a SELECT of rows the transaction goes on to change:
    /// PostgreSQL locks them against other nodes (`FOR UPDATE`); SQLite's
    /// one writer serialises already (nothing).
    const LOCK_ROWS: &'static str;
    /// Ends a claim's sub-SELECT: nodes take different rows without
    /// waiting on each other (`FOR UPDATE SKIP LOCKED`); nothing in SQLite.
    const SKIP_LOCKED: &'static str;
    /// Takes transaction-scoped locks on `keys`, in one order for every
    /// caller, serialising read-then-write steps on the same thing across
    /// nodes (PostgreSQL's advisory locks); nothing in SQLite.
    fn lock_keys<'c>(conn: &'c mut Conn<Self>, keys: &'c [String]) -> BoxFuture<'c, StoreResult<()>>;
}

/// A store the shared SQL runs on: its pools, and the in-memory index a
/// backend one process owns can keep.
pub trait Backend: Send + Sync + 'static {
    type Db: Dialect;
    /// Where writes go (SQLite: its one writer connection).
    fn writer(&self) -> &Pool<Self::Db>;
    /// Where reads go: by default the same pool (SQLite: read-only
    /// connections beside the writer).
    fn reader(&self) -> &Pool<Self::Db> {
        self.writer()
    }
    /// The in-memory opt-out index, where the backend keeps one.
    fn opt_out_index(&self) -> Option<&governance::OptOutIndex> {
        None
    }
}

/// Writes shared SQL code once for every database, with the bounds
/// sqlx's generic API needs of it: connections execute queries, arguments
/// bind, rows are read by column index, and the column types we use
/// encode, decode and have an SQL type.
///
/// - `for_every_backend! { impl Tenants { ... } }` implements a store
///   trait for every [`Backend`];
/// - `for_every_backend! { pub(super) async fn f(conn: &mut Conn<DB>, ...) -> T { ... } }`
///   (or a plain `fn`) is a helper generic over the database `DB`.
macro_rules! for_every_backend {
    (impl $store_trait:ident { $($body:tt)* }) => {
        $crate::store::sql::for_every_backend!(@bounds [B::Db]
            [#[async_trait::async_trait] impl<B: $crate::store::sql::Backend> $store_trait for B]
            { $($body)* });
    };
    ($(#[$attr:meta])* $vis:vis async fn $name:ident <$($lt:lifetime),+> ($($params:tt)*) -> $ret:ty $body:block) => {
        $crate::store::sql::for_every_backend!(@bounds [DB]
            [$(#[$attr])* $vis async fn $name<$($lt,)+ DB: $crate::store::sql::Dialect>($($params)*) -> $ret] $body);
    };
    ($(#[$attr:meta])* $vis:vis async fn $name:ident ($($params:tt)*) -> $ret:ty $body:block) => {
        $crate::store::sql::for_every_backend!(@bounds [DB]
            [$(#[$attr])* $vis async fn $name<DB: $crate::store::sql::Dialect>($($params)*) -> $ret] $body);
    };
    ($(#[$attr:meta])* $vis:vis fn $name:ident ($($params:tt)*) -> $ret:ty $body:block) => {
        $crate::store::sql::for_every_backend!(@bounds [DB]
            [$(#[$attr])* $vis fn $name<DB: $crate::store::sql::Dialect>($($params)*) -> $ret] $body);
    };
    (@bounds [$db:ty] [$($head:tt)*] $body:tt) => {
        $($head)*
        where
            for<'c> &'c mut <$db as sqlx::Database>::Connection: sqlx::Executor<'c, Database = $db>,
            <$db as sqlx::Database>::Arguments: sqlx::IntoArguments<$db>,
            <$db as sqlx::Database>::QueryResult: $crate::store::sql::RowsAffected,
            usize: sqlx::ColumnIndex<<$db as sqlx::Database>::Row>,
            for<'sql> i64: sqlx::Encode<'sql, $db> + sqlx::Decode<'sql, $db> + sqlx::Type<$db>,
            for<'sql> f64: sqlx::Encode<'sql, $db> + sqlx::Decode<'sql, $db> + sqlx::Type<$db>,
            for<'sql> bool: sqlx::Encode<'sql, $db> + sqlx::Decode<'sql, $db> + sqlx::Type<$db>,
            for<'sql> String: sqlx::Encode<'sql, $db> + sqlx::Decode<'sql, $db> + sqlx::Type<$db>,
            for<'sql> Vec<u8>: sqlx::Encode<'sql, $db> + sqlx::Decode<'sql, $db> + sqlx::Type<$db>,
            for<'sql, 'val> &'val str: sqlx::Encode<'sql, $db> + sqlx::Type<$db>,
            for<'sql, 'val> &'val [u8]: sqlx::Encode<'sql, $db> + sqlx::Type<$db>,
            // Each driver encodes NULL for itself.
            for<'sql> Option<i64>: sqlx::Encode<'sql, $db>,
            for<'sql> Option<String>: sqlx::Encode<'sql, $db>,
            for<'sql> Option<Vec<u8>>: sqlx::Encode<'sql, $db>,
            for<'sql> Option<&'sql str>: sqlx::Encode<'sql, $db>,
            for<'sql> Option<&'sql [u8]>: sqlx::Encode<'sql, $db>,
        $body
    };
}
pub(crate) use for_every_backend;

/// Rows per multi-row INSERT: keeps statements well under either
/// database's bound-parameter limit whatever the column count.
pub(super) const INSERT_CHUNK: usize = 500;

/// Runs a transaction again when the database aborted it to break a
/// deadlock or a serialization conflict with another node's (its work was
/// undone, so running it again is safe). Batches from several nodes can
/// touch the same rows (a tenant's balance) in different orders. Only
/// PostgreSQL answers these codes; with SQLite the first try is the last.
pub(super) async fn retrying<T, F, Fut>(mut transaction: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = StoreResult<T>>,
{
    let mut tries = 0u64;
    loop {
        tries += 1;
        match transaction().await {
            Err(StoreError::Database(sqlx::Error::Database(e)))
                if tries < 5 && matches!(e.code().as_deref(), Some("40P01" | "40001")) =>
            {
                tracing::debug!(error = %e, "transaction aborted by a conflict with another node; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(5 * tries)).await;
            }
            other => return other,
        }
    }
}

/// How many rows a statement changed, whichever the database.
pub trait RowsAffected {
    fn rows_affected(&self) -> u64;
}

impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::sqlite::SqliteQueryResult::rows_affected(self)
    }
}

impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        sqlx::postgres::PgQueryResult::rows_affected(self)
    }
}

/// Maps a unique-constraint violation to [`StoreError::Conflict`].
pub(super) fn conflict_as(what: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what.to_string()),
        _ => StoreError::Database(e),
    }
}
