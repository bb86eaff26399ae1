//! MQTT over WebSocket (MQTT 5.0 §6, 3.1.1 §6): the upgrade that selects the `mqtt`
//! subprotocol, and the adapter from WebSocket messages to a byte stream.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_util::{Sink, Stream as _};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::{Bytes, Message};

/// The subprotocol MQTT over WebSocket must use [MQTT-6.0.0-3] (MQTT 3.1.1 uses the same name).
const SUBPROTOCOL: &str = "mqtt";

/// The upgrade callback: select `mqtt` when the client offers it (alone or in a list such as
/// `mqtt, mqttv3.1`); otherwise refuse with HTTP 400.
#[allow(
    clippy::result_large_err,
    reason = "the signature tungstenite's Callback asks for"
)]
pub(crate) fn select_subprotocol(
    request: &Request,
    mut response: Response,
) -> Result<Response, ErrorResponse> {
    if offers_mqtt(request) {
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(SUBPROTOCOL),
        );
        Ok(response)
    } else {
        let mut refused = ErrorResponse::new(Some(
            "MQTT over WebSocket needs the \"mqtt\" subprotocol (Sec-WebSocket-Protocol: mqtt)\n"
                .to_owned(),
        ));
        *refused.status_mut() = StatusCode::BAD_REQUEST;
        Err(refused)
    }
}

fn offers_mqtt(request: &Request) -> bool {
    request
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == SUBPROTOCOL)
}

/// A WebSocket connection read and written as bytes: each write is one binary message, reads
/// return the bytes of binary messages in order, whatever their boundaries.
pub(crate) struct WsStream<S> {
    ws: WebSocketStream<S>,
    /// The unread rest of the last binary message.
    pending: Bytes,
}

impl<S> WsStream<S> {
    pub(crate) fn new(ws: WebSocketStream<S>) -> Self {
        Self {
            ws,
            pending: Bytes::new(),
        }
    }
}

fn to_io(e: tokio_tungstenite::tungstenite::Error) -> io::Error {
    io::Error::other(e)
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.pending.is_empty() {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending.split_to(n));
                return Poll::Ready(Ok(()));
            }
            match ready!(Pin::new(&mut this.ws).poll_next(cx)) {
                // End of stream: a zero-byte read.
                None | Some(Ok(Message::Close(_))) => return Poll::Ready(Ok(())),
                Some(Ok(Message::Binary(data))) => this.pending = data,
                Some(Ok(Message::Text(_))) => {
                    // [MQTT-6.0.0-1]: any data frame other than binary closes the connection.
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "text frame received: MQTT over WebSocket is binary only [MQTT-6.0.0-1]",
                    )));
                }
                // tungstenite answers pings itself.
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Err(e)) => return Poll::Ready(Err(to_io(e))),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(Pin::new(&mut this.ws).poll_ready(cx)).map_err(to_io)?;
        Pin::new(&mut this.ws)
            .start_send(Message::Binary(Bytes::copy_from_slice(buf)))
            .map_err(to_io)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().ws)
            .poll_flush(cx)
            .map_err(to_io)
    }

    /// Sends a Close frame, then reads until the peer's Close (or the end of the stream): the
    /// server drops TCP only after the closing handshake (RFC 6455 §7.1.1), so a client that
    /// answers our Close does not write into a closed socket. Callers bound the wait.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if ready!(Pin::new(&mut this.ws).poll_close(cx)).is_err() {
            // Already closed (the peer started the closing handshake, or the socket is gone).
            return Poll::Ready(Ok(()));
        }
        loop {
            match ready!(Pin::new(&mut this.ws).poll_next(cx)) {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Poll::Ready(Ok(())),
                Some(Ok(_)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(protocols: &[&str]) -> Request {
        let mut b = Request::builder().uri("/mqtt");
        for p in protocols {
            b = b.header(header::SEC_WEBSOCKET_PROTOCOL, *p);
        }
        b.body(()).expect("static request is valid")
    }

    #[test]
    fn selects_mqtt_from_a_list() {
        let response = select_subprotocol(&request(&["mqttv3.1, mqtt"]), Response::default())
            .expect("mqtt is offered");
        assert_eq!(
            response.headers().get(header::SEC_WEBSOCKET_PROTOCOL),
            Some(&HeaderValue::from_static("mqtt"))
        );
    }

    #[test]
    fn selects_mqtt_from_repeated_headers() {
        assert!(select_subprotocol(&request(&["wamp", "mqtt"]), Response::default()).is_ok());
    }

    #[test]
    fn refuses_upgrade_without_mqtt_with_400() {
        for offered in [&[][..], &["mqttv3.1"], &["MQTTX"]] {
            let refused = select_subprotocol(&request(offered), Response::default())
                .expect_err("mqtt is not offered");
            assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        }
    }
}
