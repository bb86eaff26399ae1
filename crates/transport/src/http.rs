//! The HTTP side of the WebSocket port: `GET /health` and `GET /metrics` are answered there;
//! every other request goes on to the WebSocket upgrade, unless the port serves the endpoints
//! only ([`HttpAccess::status_only`], answered 404) or its `Origin` is not allowed (403).
//! `/metrics` may ask for a bearer token (401 without it); `/health` stays open.
//!
//! The request head is parsed with `httparse` (the parser under hyper and tungstenite) and
//! replayed to tungstenite when it is an upgrade.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use subtle::ConstantTimeEq;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::error::HandshakeError;

/// Largest request head read before the request is refused (with the connection closed).
const MAX_HEAD: usize = 8 * 1024;

/// The longest part of a client's `Origin` kept for the log.
const MAX_LOGGED_ORIGIN: usize = 64;

/// What the HTTP endpoints report; the broker implements it.
pub trait HttpStatus: Send + Sync + std::fmt::Debug {
    /// `GET /health`: 200 when true, 503 when false.
    fn healthy(&self) -> bool;
    /// `GET /metrics`: Prometheus text exposition format (version 0.0.4).
    fn metrics(&self) -> String;
}

/// Who may use the HTTP side of a WebSocket listener. The default is open: no token, any
/// origin, WebSocket upgrades on.
#[derive(Clone, Default)]
pub(crate) struct HttpAccess {
    /// `GET /metrics` needs `Authorization: Bearer <token>`.
    pub metrics_token: Option<Arc<str>>,
    /// The origins an upgrade with an `Origin` header may come from; `None` for any. Compared
    /// without regard to ASCII case.
    pub origins: Option<Arc<[String]>>,
    /// Only `/health` and `/metrics`: every other request gets 404.
    pub status_only: bool,
}

impl std::fmt::Debug for HttpAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpAccess")
            .field(
                "metrics_token",
                &self.metrics_token.as_ref().map(|_| "<redacted>"),
            )
            .field("origins", &self.origins)
            .field("status_only", &self.status_only)
            .finish()
    }
}

impl HttpAccess {
    /// True when `header` (the `Authorization` value) carries the token, or none is needed.
    /// The token is compared in constant time.
    fn authorized(&self, header: Option<&[u8]>) -> bool {
        let Some(token) = &self.metrics_token else {
            return true;
        };
        let offered = header
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| h.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        offered.is_some_and(|offered| bool::from(offered.as_bytes().ct_eq(token.as_bytes())))
    }

    /// True when an upgrade with this `Origin` header (absent: not a browser) may go on.
    fn origin_allowed(&self, origin: Option<&[u8]>) -> bool {
        match (&self.origins, origin) {
            (None, _) | (_, None) => true,
            (Some(allowed), Some(origin)) => std::str::from_utf8(origin).is_ok_and(|origin| {
                let origin = origin.trim().trim_end_matches('/');
                allowed.iter().any(|a| a.eq_ignore_ascii_case(origin))
            }),
        }
    }
}

/// A request head read from a connection, with any bytes after it.
pub(crate) struct Head {
    bytes: Vec<u8>,
    /// `None` when the head is malformed or too large.
    request: Option<Request>,
}

/// What the answer needs from a parsed request head.
struct Request {
    endpoint: Option<Endpoint>,
    origin: Option<Vec<u8>>,
    authorization: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Health,
    Metrics,
}

/// What became of a request.
pub(crate) enum Outcome {
    /// Answered (an endpoint, or 404 on a port without WebSocket); nothing more to do.
    Answered,
    /// Refused with an HTTP error the peer was sent.
    Refused(HandshakeError),
    /// For the WebSocket upgrade.
    Upgrade,
}

/// Reads one request head. Requests that are not a complete, parseable HTTP/1.x head within
/// [`MAX_HEAD`] are left to tungstenite, which refuses them.
pub(crate) async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<Head, HandshakeError> {
    let mut bytes = Vec::with_capacity(1024);
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&bytes) {
            Ok(httparse::Status::Complete(_)) => {
                let request = Some(Request::from(&request));
                return Ok(Head { bytes, request });
            }
            Ok(httparse::Status::Partial) if bytes.len() < MAX_HEAD => {}
            // Malformed or too large: tungstenite gives the peer its error.
            _ => {
                return Ok(Head {
                    bytes,
                    request: None,
                });
            }
        }
        let mut chunk = [0u8; 1024];
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(HandshakeError::Http)?;
        if n == 0 {
            return Err(HandshakeError::Http(io::ErrorKind::UnexpectedEof.into()));
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
}

impl From<&httparse::Request<'_, '_>> for Request {
    fn from(request: &httparse::Request<'_, '_>) -> Self {
        let header = |name: &str| {
            request
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value.to_vec())
        };
        Request {
            endpoint: endpoint(request),
            origin: header("origin"),
            authorization: header("authorization"),
        }
    }
}

/// `GET /health` or `GET /metrics` without an upgrade; anything else is for the WebSocket side.
fn endpoint(request: &httparse::Request<'_, '_>) -> Option<Endpoint> {
    if request.method != Some("GET") {
        return None;
    }
    let upgrade = request
        .headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("upgrade"));
    if upgrade {
        return None;
    }
    let path = request.path?.split('?').next()?;
    match path {
        "/health" => Some(Endpoint::Health),
        "/metrics" => Some(Endpoint::Metrics),
        _ => None,
    }
}

/// One answer: status line, content type, extra header lines, body.
struct Response {
    status: &'static str,
    content_type: &'static str,
    extra: &'static str,
    body: String,
}

impl Response {
    fn text(status: &'static str, body: &str) -> Self {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            extra: "",
            body: body.to_owned(),
        }
    }
}

impl Head {
    /// Answers the request if it is for an endpoint or refused; [`Outcome::Upgrade`] if it is
    /// for the WebSocket side.
    pub(crate) async fn answer<S: AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        status: Option<&dyn HttpStatus>,
        access: &HttpAccess,
    ) -> Result<Outcome, HandshakeError> {
        let (response, outcome) = self.respond(status, access);
        let Some(response) = response else {
            return Ok(outcome);
        };
        let text = format!(
            "HTTP/1.1 {}\r\ncontent-type: {}\r\ncontent-length: {}\r\n{}connection: close\r\n\r\n{}",
            response.status,
            response.content_type,
            response.body.len(),
            response.extra,
            response.body
        );
        stream
            .write_all(text.as_bytes())
            .await
            .map_err(HandshakeError::Http)?;
        stream.flush().await.map_err(HandshakeError::Http)?;
        let _ = stream.shutdown().await;
        Ok(outcome)
    }

    /// The answer to send, if any, and what became of the request.
    fn respond(
        &self,
        status: Option<&dyn HttpStatus>,
        access: &HttpAccess,
    ) -> (Option<Response>, Outcome) {
        let Some(request) = &self.request else {
            if access.status_only {
                let response = Response::text("400 Bad Request", "bad request\n");
                return (Some(response), Outcome::Answered);
            }
            return (None, Outcome::Upgrade);
        };
        match (request.endpoint, status) {
            (Some(Endpoint::Health), Some(status)) => {
                let response = if status.healthy() {
                    Response::text("200 OK", "ok\n")
                } else {
                    Response::text("503 Service Unavailable", "unavailable\n")
                };
                (Some(response), Outcome::Answered)
            }
            (Some(Endpoint::Metrics), Some(_))
                if !access.authorized(request.authorization.as_deref()) =>
            {
                let response = Response {
                    extra: "www-authenticate: Bearer realm=\"metrics\"\r\n",
                    ..Response::text("401 Unauthorized", "a bearer token is required\n")
                };
                (
                    Some(response),
                    Outcome::Refused(HandshakeError::MetricsUnauthorized),
                )
            }
            (Some(Endpoint::Metrics), Some(status)) => {
                let response = Response {
                    status: "200 OK",
                    content_type: "text/plain; version=0.0.4; charset=utf-8",
                    extra: "",
                    body: status.metrics(),
                };
                (Some(response), Outcome::Answered)
            }
            _ if access.status_only => {
                let response = Response::text(
                    "404 Not Found",
                    "MQTT over WebSocket is off on this port; it serves GET /health and GET /metrics only\n",
                );
                (Some(response), Outcome::Refused(HandshakeError::NotFound))
            }
            _ if !access.origin_allowed(request.origin.as_deref()) => {
                let origin = String::from_utf8_lossy(request.origin.as_deref().unwrap_or_default())
                    .chars()
                    .take(MAX_LOGGED_ORIGIN)
                    .collect();
                let response = Response::text(
                    "403 Forbidden",
                    "this origin may not open MQTT over WebSocket\n",
                );
                (
                    Some(response),
                    Outcome::Refused(HandshakeError::OriginNotAllowed(origin)),
                )
            }
            _ => (None, Outcome::Upgrade),
        }
    }

    /// The stream with the bytes read so far put back in front.
    pub(crate) fn replay<S>(self, stream: S) -> Replay<S> {
        Replay {
            prefix: self.bytes,
            offset: 0,
            stream,
        }
    }
}

/// A stream whose first reads return bytes already read from it.
pub(crate) struct Replay<S> {
    prefix: Vec<u8>,
    offset: usize,
    stream: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Replay<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let rest = this.prefix.get(this.offset..).unwrap_or_default();
        if !rest.is_empty() {
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.offset += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replay<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Up;

    impl HttpStatus for Up {
        fn healthy(&self) -> bool {
            true
        }
        fn metrics(&self) -> String {
            "mqtt_clients_connected 0\n".to_owned()
        }
    }

    const TOKEN: &str = "t0ken-with-enough-characters";

    /// Reads `request`, answers it as `access` says; the response text and the outcome.
    async fn exchange(request: &str, access: &HttpAccess) -> (String, Outcome) {
        let mut input = request.as_bytes();
        let head = read_head(&mut input).await.expect("a head");
        let mut output = Vec::new();
        let outcome = head
            .answer(&mut output, Some(&Up), access)
            .await
            .expect("answered");
        (String::from_utf8(output).expect("utf-8"), outcome)
    }

    fn get(path: &str, extra: &str) -> String {
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n")
    }

    fn upgrade(origin: Option<&str>) -> String {
        let origin = origin
            .map(|o| format!("Origin: {o}\r\n"))
            .unwrap_or_default();
        get(
            "/mqtt",
            &format!(
                "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Protocol: mqtt\r\n{origin}"
            ),
        )
    }

    fn with_token() -> HttpAccess {
        HttpAccess {
            metrics_token: Some(Arc::from(TOKEN)),
            ..HttpAccess::default()
        }
    }

    #[tokio::test]
    async fn metrics_without_the_bearer_token_gets_401_and_health_stays_open() {
        let access = with_token();
        for header in [
            String::new(),
            "Authorization: Bearer wrong-token-of-some-length\r\n".to_owned(),
            format!("Authorization: Basic {TOKEN}\r\n"),
            format!("Authorization: Bearer {TOKEN}x\r\n"),
            format!("Authorization: Bearer {}\r\n", &TOKEN[1..]),
        ] {
            let (response, outcome) = exchange(&get("/metrics", &header), &access).await;
            assert!(
                response.starts_with("HTTP/1.1 401 Unauthorized\r\n"),
                "{header:?}: {response}"
            );
            assert!(response.contains("www-authenticate: Bearer"), "{response}");
            assert!(!response.contains("mqtt_clients_connected"), "{response}");
            assert!(matches!(
                outcome,
                Outcome::Refused(HandshakeError::MetricsUnauthorized)
            ));
        }
        for header in [
            format!("Authorization: Bearer {TOKEN}\r\n"),
            format!("authorization: bearer  {TOKEN} \r\n"),
        ] {
            let (response, outcome) = exchange(&get("/metrics", &header), &access).await;
            assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
            assert!(
                response.ends_with("mqtt_clients_connected 0\n"),
                "{response}"
            );
            assert!(matches!(outcome, Outcome::Answered));
        }
        let (response, _) = exchange(&get("/health", ""), &access).await;
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        // Without a token configured, /metrics is open.
        let (response, _) = exchange(&get("/metrics", ""), &HttpAccess::default()).await;
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    }

    #[tokio::test]
    async fn upgrades_from_origins_not_allowed_get_403() {
        let access = HttpAccess {
            origins: Some(vec!["https://app.example.com".to_owned()].into()),
            ..HttpAccess::default()
        };
        for allowed in [
            None,
            Some("https://app.example.com"),
            Some("HTTPS://App.Example.com"),
        ] {
            let (response, outcome) = exchange(&upgrade(allowed), &access).await;
            assert!(response.is_empty(), "{allowed:?}: {response}");
            assert!(matches!(outcome, Outcome::Upgrade), "{allowed:?}");
        }
        for refused in [
            "https://evil.example",
            "null",
            "https://app.example.com.evil",
        ] {
            let (response, outcome) = exchange(&upgrade(Some(refused)), &access).await;
            assert!(
                response.starts_with("HTTP/1.1 403 Forbidden\r\n"),
                "{refused}: {response}"
            );
            match outcome {
                Outcome::Refused(HandshakeError::OriginNotAllowed(origin)) => {
                    assert_eq!(origin, refused);
                }
                _ => panic!("{refused}: not refused"),
            }
        }
        // Any origin by default.
        let (_, outcome) = exchange(
            &upgrade(Some("https://evil.example")),
            &HttpAccess::default(),
        )
        .await;
        assert!(matches!(outcome, Outcome::Upgrade));
    }

    #[tokio::test]
    async fn refused_origins_are_logged_escaped_and_truncated() {
        let access = HttpAccess {
            origins: Some(vec!["https://a.example".to_owned()].into()),
            ..HttpAccess::default()
        };
        let long = format!("https://x\u{202e}{}", "y".repeat(200));
        let (_, outcome) = exchange(&upgrade(Some(&long)), &access).await;
        let Outcome::Refused(e) = outcome else {
            panic!("not refused")
        };
        let shown = e.to_string();
        assert!(shown.contains("\\u{202e}"), "{shown}");
        assert!(shown.len() < 160, "{shown}");
    }

    #[tokio::test]
    async fn a_status_only_port_answers_the_endpoints_and_404_otherwise() {
        let access = HttpAccess {
            status_only: true,
            ..HttpAccess::default()
        };
        let (response, _) = exchange(&get("/health", ""), &access).await;
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        let (response, _) = exchange(&get("/metrics", ""), &access).await;
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        for request in [upgrade(None), get("/", "")] {
            let (response, outcome) = exchange(&request, &access).await;
            assert!(
                response.starts_with("HTTP/1.1 404 Not Found\r\n"),
                "{response}"
            );
            assert!(
                response.contains("MQTT over WebSocket is off"),
                "{response}"
            );
            assert!(matches!(
                outcome,
                Outcome::Refused(HandshakeError::NotFound)
            ));
        }
        let (response, _) = exchange("\x10\x20 not http\r\n\r\n", &access).await;
        assert!(
            response.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{response}"
        );
    }
}
