//! Close our end of upstream connections the server has closed. awc's pool looks at an idle
//! connection only when it next connects to that host (and then only until it finds a live
//! one), so a keep-alive connection the server closed while it sat in the pool stays in
//! CLOSE-WAIT, holding a socket and its buffers, indefinitely. Each connection therefore gets
//! a small watcher that asks the kernel on an interval whether the server has closed it and,
//! once it has, sends our FIN. The pool later finds it at end of file and drops it, as it does
//! any dead connection.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_tls::connect::{ConnectError, ConnectInfo, Connection};
use actix_web::dev::Service;
use actix_web::rt::net::{ActixStream, TcpStream};
use awc::http::Uri;
use futures_util::future::LocalBoxFuture;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, Ready};
use tokio::task::JoinHandle;

/// How often a connection is checked: the bound on how long a closed one lingers.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// awc's TCP connector, handing out [`Watched`] streams.
#[derive(Clone)]
pub struct Watching<S> {
    inner: S,
}

impl<S> Watching<S> {
    pub fn new(inner: S) -> Watching<S> {
        Watching { inner }
    }
}

impl<S> Service<ConnectInfo<Uri>> for Watching<S>
where
    S: Service<ConnectInfo<Uri>, Response = Connection<Uri, TcpStream>, Error = ConnectError>,
    S::Future: 'static,
{
    type Response = Connection<Uri, Watched>;
    type Error = ConnectError;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    actix_web::dev::forward_ready!(inner);

    fn call(&self, req: ConnectInfo<Uri>) -> Self::Future {
        let connecting = self.inner.call(req);
        Box::pin(async move {
            let (tcp, conn) = connecting.await?.replace_io(());
            Ok(conn.replace_io(Watched::new(tcp)).1)
        })
    }
}

/// A TCP stream with its watcher, which lives exactly as long as the stream.
#[derive(Debug)]
pub struct Watched {
    io: TcpStream,
    watcher: JoinHandle<()>,
}

impl Watched {
    fn new(io: TcpStream) -> Watched {
        let watcher = actix_web::rt::spawn(watch(io.as_raw_fd()));
        Watched { io, watcher }
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        // Before the socket closes (fields drop after this). The watcher is a task of this
        // thread, so it is not running now and never runs again: it never sees a reused fd.
        self.watcher.abort();
    }
}

async fn watch(fd: RawFd) {
    let mut every = tokio::time::interval(CHECK_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if peer_closed(fd) {
            // Our FIN: the connection leaves CLOSE-WAIT now, not at the pool's next look.
            // Only the write side: anything the server sent before closing stays readable.
            // SAFETY: `fd` is open for as long as this task can run (see `Drop for Watched`).
            unsafe { libc::shutdown(fd, libc::SHUT_WR) };
            return;
        }
    }
}

/// The server sent its FIN: the socket is in CLOSE-WAIT. Asked of the kernel rather than
/// read from the socket, so unread bytes (a TLS `close_notify`, a response being read) do
/// not hide it.
#[cfg(target_os = "linux")]
fn peer_closed(fd: RawFd) -> bool {
    /// `TCP_CLOSE_WAIT` in the kernel's `enum tcp_state` (include/net/tcp_states.h).
    const TCP_CLOSE_WAIT: u8 = 8;
    // SAFETY: `tcp_info` is plain data; the kernel writes at most `len` bytes into it.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    let ok = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    } == 0;
    ok && info.tcpi_state == TCP_CLOSE_WAIT
}

/// Elsewhere: a non-blocking peek that finds end of file (nothing left to read).
#[cfg(not(target_os = "linux"))]
fn peer_closed(fd: RawFd) -> bool {
    let mut byte = [0u8; 1];
    // SAFETY: a one-byte buffer we own; `fd` is open (see `watch`).
    let n = unsafe {
        libc::recv(
            fd,
            byte.as_mut_ptr().cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n == 0
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl ActixStream for Watched {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Ready>> {
        ActixStream::poll_read_ready(&self.io, cx)
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Ready>> {
        ActixStream::poll_write_ready(&self.io, cx)
    }
}
