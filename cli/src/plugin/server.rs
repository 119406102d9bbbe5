//! Both listeners of the daemon: the REST API on TCP (`-l`) and the volume
//! plugin on `<s>/nvidia-docker.sock`. Every connection is its own task
//! with a 5 s header timeout (v1's servers had 5 s read/write timeouts), so
//! a slow client holds only its own connection. SIGINT/SIGTERM stop both
//! listeners, let in-flight requests finish (up to 5 s) and remove the
//! socket; if either server fails, the other is stopped too.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;

use super::state::State;
use super::{rest, volume};

/// The plugin's socket file name (plugin name `nvidia-docker`).
pub const SOCKET_NAME: &str = "nvidia-docker.sock";
const TIMEOUT: Duration = Duration::from_secs(5);
/// How often the inventory is re-read for a driver upgrade.
const REFRESH_EVERY: Duration = Duration::from_secs(10);

/// Why serving failed.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A listener could not be set up.
    #[error("listen {what} {addr}")]
    Listen {
        /// `tcp` or `unix`.
        what: &'static str,
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The signal handlers.
    #[error("signal handler")]
    Signal(#[source] io::Error),
    /// Accepting a connection failed.
    #[error("accept on {addr}")]
    Accept {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// The bound listeners (bound before the start-up log says "Serving").
pub struct Listeners {
    tcp: TcpListener,
    unix: UnixListener,
    socket: PathBuf,
}

/// Creates `<s>` (0700), removes a stale socket and binds both listeners.
pub async fn bind(listen: &str, socket_dir: &Path) -> Result<Listeners, ServerError> {
    let unix_err = |source| ServerError::Listen {
        what: "unix",
        addr: socket_dir.join(SOCKET_NAME).display().to_string(),
        source,
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(socket_dir)
        .map_err(unix_err)?;
    let socket = socket_dir.join(SOCKET_NAME);
    match fs::remove_file(&socket) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(unix_err(e)),
    }
    let unix = UnixListener::bind(&socket).map_err(unix_err)?;
    // dockerd (root) connects; keep the socket private to the owner.
    let _ = fs::set_permissions(&socket, fs::Permissions::from_mode(0o600));
    let tcp = TcpListener::bind(listen)
        .await
        .map_err(|source| ServerError::Listen {
            what: "tcp",
            addr: listen.to_owned(),
            source,
        })?;
    Ok(Listeners { tcp, unix, socket })
}

impl Listeners {
    /// The REST API's bound address (for `-l 127.0.0.1:0`).
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.tcp.local_addr().ok()
    }
}

fn serve_conn<I, F, Fut>(io: I, graceful: &GracefulShutdown, handler: F)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn(hyper::Request<hyper::body::Incoming>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<
            Output = Result<
                hyper::Response<http_body_util::Full<bytes::Bytes>>,
                std::convert::Infallible,
            >,
        > + Send
        + 'static,
{
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(TIMEOUT)
        .serve_connection(TokioIo::new(io), service_fn(handler));
    let conn = graceful.watch(conn);
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            log::debug!("connection: {e}");
        }
    });
}

async fn shutdown_signal() -> Result<(), ServerError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(ServerError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(ServerError::Signal)?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

/// Serves until SIGINT/SIGTERM or a listener failure.
pub async fn serve(state: Arc<State>, listeners: Listeners) -> Result<(), ServerError> {
    let Listeners { tcp, unix, socket } = listeners;
    let graceful = GracefulShutdown::new();
    let (stop_tx, stop_rx) = watch::channel(false);

    // Re-read the inventory now and then: a driver upgrade needs no restart.
    let refresher = {
        let state = Arc::clone(&state);
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(REFRESH_EVERY) => {}
                    _ = stop.changed() => return,
                }
                let st = Arc::clone(&state);
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || st.refresh()).await {
                    log::warn!("could not re-read the inventory: {e}");
                }
            }
        })
    };

    let tcp_addr = tcp
        .local_addr()
        .map_or_else(|_| "tcp".to_owned(), |a| a.to_string());
    let unix_addr = socket.display().to_string();
    let result = async {
        let signal = shutdown_signal();
        tokio::pin!(signal);
        loop {
            tokio::select! {
                r = &mut signal => return r,
                r = tcp.accept() => {
                    let (stream, _) = r.map_err(|source| ServerError::Accept { addr: tcp_addr.clone(), source })?;
                    let _ = stream.set_nodelay(true);
                    let st = Arc::clone(&state);
                    serve_conn(stream, &graceful, move |req| rest::handle(Arc::clone(&st), req));
                }
                r = unix.accept() => {
                    let (stream, _) = r.map_err(|source| ServerError::Accept { addr: unix_addr.clone(), source })?;
                    let st = Arc::clone(&state);
                    serve_conn(stream, &graceful, move |req| volume::handle(Arc::clone(&st), req));
                }
            }
        }
    }
    .await;

    let _ = stop_tx.send(true);
    drop(tcp);
    drop(unix);
    let _ = fs::remove_file(&socket);
    if tokio::time::timeout(TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        log::warn!("connections still open after {TIMEOUT:?}; closing them");
    }
    let _ = refresher.await;
    result
}
