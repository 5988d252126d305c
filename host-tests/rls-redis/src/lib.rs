//! rls-redis: an Envoy rate-limit service (RLS v3, `envoy.service.ratelimit.v3.RateLimitService`)
//! that keeps its counters in Redis, so several replicas of it, and every gateway that asks them,
//! enforce one limit together. It backs the global mode of shieldwall's rate-limit filter in the
//! end-to-end tests and the local gateway.
//!
//! - [`config`]: the limits (domains → nested descriptors → `requests_per_unit` per `unit`);
//! - [`limiter`]: fixed-window counters in Redis, INCRBY + EXPIRE in one transaction;
//! - [`service`]: the gRPC service;
//! - [`proto`]: the wire messages;
//! - [`Server`]: a running service on its own thread (for tests), and [`testing`]: a throwaway
//!   `redis-server`.

pub mod config;
pub mod limiter;
pub mod proto;
pub mod service;
pub mod testing;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;
use tonic::transport::server::TcpIncoming;

pub use config::{Config, ConfigError};
pub use limiter::Limiter;
pub use service::RateLimitService;

/// The key prefix of the counters, unless configured otherwise.
pub const DEFAULT_PREFIX: &str = "shieldwall_rl";

/// Serves the rate-limit service on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    limiter: Arc<Limiter>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .serve_with_incoming_shutdown(RateLimitService::new(limiter), incoming, shutdown)
        .await
}

/// A service running on a thread of its own with a current-thread runtime. Dropping it stops
/// the service and closes every connection at once (no graceful drain: for tests that need the
/// service to vanish).
pub struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds `listen` (port 0 for any free port) and starts serving.
    pub fn start(
        listen: SocketAddr,
        config: Config,
        redis_url: &str,
        prefix: &str,
    ) -> std::io::Result<Server> {
        let limiter = Limiter::new(config, redis_url, prefix).map_err(std::io::Error::other)?;
        let std_listener = std::net::TcpListener::bind(listen)?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name(format!("rls-redis-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(std_listener) {
                        Ok(l) => l,
                        Err(e) => {
                            eprintln!("rls-redis: {e}");
                            return;
                        }
                    };
                    tokio::select! {
                        r = serve(listener, Arc::new(limiter), std::future::pending()) => {
                            if let Err(e) = r {
                                eprintln!("rls-redis: {e}");
                            }
                        }
                        _ = stopped => {}
                    }
                });
                // Dropping the runtime here drops every connection task with it.
            })?;
        Ok(Server {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
