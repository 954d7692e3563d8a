//! Redis: a multiplexed connection per thread for a single Redis (one per
//! Cluster node for a Redis Cluster), made on first use and re-made by the
//! client whenever it drops.
//!
//! Every command the gateway sends is a typed operation of one of the
//! submodules, one per capability, over the key layout of [`keys`]; no
//! connection leaves this module.

pub mod answers;
pub mod cache;
pub mod gcra;
pub mod keys;
pub mod leaderboard;
pub mod sessions;

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, RetryMethod, Value};
use secrecy::ExposeSecret;
use tokio::sync::OnceCell;

use super::{CallGuard, HealthDetail, StoreError, StoreKind};
use crate::config::RedisSettings;
use crate::metrics::Metrics;

#[derive(Clone)]
enum Client {
    Single(redis::Client),
    Cluster(Box<ClusterClient>),
}

/// A live connection to a single Redis or to a Redis Cluster. Both route
/// and reconnect by themselves, so callers use it as one connection.
#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

#[derive(Clone)]
pub struct Redis {
    /// Tells this Redis's connections apart in each thread's [`SINGLE`].
    id: u64,
    client: Client,
    /// The one connection to a Redis Cluster, shared by every thread.
    cluster: Arc<OnceCell<Connection>>,
    guard: CallGuard,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's connection to each single Redis. A connection's task
    /// runs on the runtime that made it: made here, a command goes out and
    /// its answer comes back on the thread that sent it, rather than
    /// through a task on another thread, which cost a wake-up and a
    /// context switch each way.
    static SINGLE: RefCell<Vec<(u64, ConnectionManager)>> = const { RefCell::new(Vec::new()) };
}

impl Redis {
    pub fn new(settings: &RedisSettings, metrics: Arc<Metrics>) -> Result<Self, StoreError> {
        let timeout = settings.timeout();
        let nodes = settings.cluster_node_urls();
        let client = if nodes.is_empty() {
            redis::Client::open(settings.url.expose_secret()).map(Client::Single)
        } else {
            ClusterClient::builder(nodes)
                .connection_timeout(timeout)
                .response_timeout(timeout)
                .retries(1)
                .build()
                .map(|client| Client::Cluster(Box::new(client)))
        }
        .map_err(|e| StoreError::failed(StoreKind::Redis, e))?;
        Ok(Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            client,
            cluster: Arc::new(OnceCell::new()),
            guard: CallGuard::new(StoreKind::Redis, timeout, metrics),
        })
    }

    /// A connection for this thread (a single Redis) or the shared one (a
    /// Cluster). The gateway starts without Redis; the first call after
    /// Redis comes up makes the connection.
    async fn connection(&self) -> Result<Connection, StoreError> {
        let client = match &self.client {
            Client::Single(client) => client,
            Client::Cluster(client) => {
                return self
                    .cluster
                    .get_or_try_init(|| async {
                        client
                            .get_async_connection()
                            .await
                            .map(Connection::Cluster)
                            .map_err(redis_error)
                    })
                    .await
                    .cloned();
            }
        };
        let held = SINGLE.with(|held| {
            held.borrow()
                .iter()
                .find(|(id, _)| *id == self.id)
                .map(|(_, connection)| connection.clone())
        });
        if let Some(connection) = held {
            return Ok(Connection::Single(connection));
        }
        let timeout = self.guard.timeout();
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(redis_error)?;
        // Kept by the thread this call ended on (the same one, on the
        // gateway's single-threaded workers); two calls racing to make the
        // first keep the first.
        SINGLE.with(|held| {
            let mut held = held.borrow_mut();
            if !held.iter().any(|(id, _)| *id == self.id) {
                held.push((self.id, connection.clone()));
            }
        });
        Ok(Connection::Single(connection))
    }

    /// Runs `call` on the shared connection within the Redis timeout,
    /// counted under `operation`.
    async fn run<T, F, Fut>(&self, operation: &'static str, call: F) -> Result<T, StoreError>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: std::future::Future<Output = Result<T, RedisError>>,
    {
        self.guard
            .run(operation, async {
                let connection = self.connection().await?;
                call(connection).await.map_err(redis_error)
            })
            .await
    }

    /// Like [`Redis::run`] with a tighter bound, for callers that would
    /// rather decide without Redis than wait for it.
    async fn run_within<T, F, Fut>(
        &self,
        operation: &'static str,
        timeout: std::time::Duration,
        call: F,
    ) -> Result<T, StoreError>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: std::future::Future<Output = Result<T, RedisError>>,
    {
        self.guard
            .run_within(operation, timeout, async {
                let connection = self.connection().await?;
                call(connection).await.map_err(redis_error)
            })
            .await
    }

    pub async fn health(&self) -> Result<HealthDetail, StoreError> {
        self.run("health", |mut connection| async move {
            let texts = info(&mut connection).await?;
            // INFO answers while a restarted Redis still loads its data,
            // when every other command is refused.
            if texts
                .iter()
                .any(|text| text.lines().any(|l| l.trim() == "loading:1"))
            {
                return Err(RedisError::from((
                    redis::ErrorKind::Server(redis::ServerErrorKind::BusyLoading),
                    "Redis is loading its dataset",
                )));
            }
            let version = texts.iter().find_map(|text| {
                text.lines()
                    .find_map(|line| line.strip_prefix("redis_version:"))
                    .map(|v| v.trim().to_owned())
            });
            Ok(HealthDetail {
                version,
                peers: matches!(self.client, Client::Cluster(_)).then_some(texts.len()),
            })
        })
        .await
    }

    /// Each node's `maxmemory-policy`, as INFO reports it (CONFIG is often
    /// refused by managed Redis).
    pub async fn eviction_policies(&self) -> Result<Vec<String>, StoreError> {
        self.run("eviction_policy", |mut connection| async move {
            Ok(info(&mut connection)
                .await?
                .iter()
                .filter_map(|text| {
                    text.lines()
                        .find_map(|line| line.strip_prefix("maxmemory_policy:"))
                        .map(|policy| policy.trim().to_owned())
                })
                .collect())
        })
        .await
    }
}

/// INFO's text, one per node (a Cluster answers for each). Every section,
/// as the one call all Redis versions take.
async fn info(connection: &mut Connection) -> Result<Vec<String>, RedisError> {
    let info: Value = redis::cmd("INFO").query_async(connection).await?;
    Ok(match info {
        Value::Map(per_node) => per_node
            .into_iter()
            .filter_map(|(_, text)| redis::from_redis_value(text).ok())
            .collect(),
        single => vec![redis::from_redis_value(single)?],
    })
}

/// Errors that say Redis cannot serve now (down, loading its data after a
/// restart, failing over, out of memory) are "unavailable", answered with
/// 503; the rest are failures of the call itself.
pub(crate) fn redis_error(error: RedisError) -> StoreError {
    // A write refused at `maxmemory` (also from inside a script, where it
    // arrives as the script's error) is Redis unable to serve, not a bug.
    let out_of_memory =
        error.code() == Some("OOM") || error.to_string().contains("OOM command not allowed");
    let come_back_later = matches!(
        error.retry_method(),
        RetryMethod::WaitAndRetry
            | RetryMethod::Reconnect
            | RetryMethod::ReconnectFromInitialConnections
    );
    if come_back_later
        || out_of_memory
        || error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
        || error.is_unrecoverable_error()
        || error.is_cluster_error()
    {
        StoreError::unavailable(StoreKind::Redis, error)
    } else {
        StoreError::failed(StoreKind::Redis, error)
    }
}
