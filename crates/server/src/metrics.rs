//! `GET /health` and `GET /metrics` on the HTTP port: the broker's counters in the Prometheus
//! text format, and connections by transport.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use transport::TransportKind;

use crate::broker::Shared;

/// Open MQTT connections (after their handshakes) by transport.
#[derive(Debug, Default)]
pub(crate) struct Connections {
    tcp: AtomicU64,
    tls: AtomicU64,
    ws: AtomicU64,
    wss: AtomicU64,
}

impl Connections {
    fn of(&self, kind: TransportKind) -> &AtomicU64 {
        match kind {
            TransportKind::Tcp => &self.tcp,
            TransportKind::Tls => &self.tls,
            TransportKind::WebSocket => &self.ws,
            TransportKind::SecureWebSocket => &self.wss,
        }
    }

    /// Counts a connection of `kind` until the guard is dropped.
    pub(crate) fn open(self: &Arc<Self>, kind: TransportKind) -> OpenConnection {
        self.of(kind).fetch_add(1, Ordering::Relaxed);
        OpenConnection {
            connections: self.clone(),
            kind,
        }
    }
}

/// One open connection in [`Connections`].
pub(crate) struct OpenConnection {
    connections: Arc<Connections>,
    kind: TransportKind,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.connections
            .of(self.kind)
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// What the HTTP endpoints report.
#[derive(Debug)]
pub(crate) struct Status {
    pub shared: Arc<Shared>,
    pub connections: Arc<Connections>,
    /// False once shutdown has begun.
    pub serving: Arc<AtomicBool>,
}

impl transport::HttpStatus for Status {
    fn healthy(&self) -> bool {
        self.serving.load(Ordering::Relaxed)
    }

    // Long, but flat: one `metric` call per exported metric, in the order `/metrics` lists them.
    fn metrics(&self) -> String {
        let stats = self.shared.stats();
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            // Writing to a String cannot fail.
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let c = &self.connections;
        metric(
            "mqtt_connections",
            "gauge",
            "Open MQTT connections by transport.",
            &[
                ("{transport=\"tcp\"}", load(&c.tcp)),
                ("{transport=\"tls\"}", load(&c.tls)),
                ("{transport=\"ws\"}", load(&c.ws)),
                ("{transport=\"wss\"}", load(&c.wss)),
            ],
        );
        metric(
            "mqtt_clients_connected",
            "gauge",
            "Clients past CONNECT.",
            &[("", load(&stats.clients_connected))],
        );
        metric(
            "mqtt_messages_received_total",
            "counter",
            "PUBLISH packets received, by QoS.",
            &[
                ("{qos=\"0\"}", load(&stats.received_by_qos[0])),
                ("{qos=\"1\"}", load(&stats.received_by_qos[1])),
                ("{qos=\"2\"}", load(&stats.received_by_qos[2])),
            ],
        );
        metric(
            "mqtt_messages_sent_total",
            "counter",
            "PUBLISH packets sent, by QoS.",
            &[
                ("{qos=\"0\"}", load(&stats.sent_by_qos[0])),
                ("{qos=\"1\"}", load(&stats.sent_by_qos[1])),
                ("{qos=\"2\"}", load(&stats.sent_by_qos[2])),
            ],
        );
        metric(
            "mqtt_messages_dropped_total",
            "counter",
            "Messages dropped by full session queues.",
            &[("", load(&stats.messages_dropped))],
        );
        metric(
            "mqtt_messages_unauthorized_total",
            "counter",
            "Queued or in-flight messages not sent because the subscriber may no longer read them.",
            &[("", load(&stats.messages_unauthorized))],
        );
        metric(
            "mqtt_retained_refused_total",
            "counter",
            "Retained PUBLISHes refused because the retained messages' count or bytes limit would be passed.",
            &[("", load(&stats.retained_refused))],
        );
        metric(
            "mqtt_bytes_received_total",
            "counter",
            "Bytes of MQTT packets received.",
            &[("", load(&stats.bytes_received))],
        );
        metric(
            "mqtt_bytes_sent_total",
            "counter",
            "Bytes of MQTT packets sent.",
            &[("", load(&stats.bytes_sent))],
        );
        metric(
            "mqtt_auth_failures_total",
            "counter",
            "Connections refused for bad credentials.",
            &[("", load(&stats.auth_failures))],
        );
        metric(
            "mqtt_connections_rate_limited_total",
            "counter",
            "Connections closed at accept for exceeding mqtt.limits.connectionRatePerIp.",
            &[("", load(&stats.connections_rate_limited))],
        );
        let subscriptions = self.shared.index_read().len() as u64;
        metric(
            "mqtt_subscriptions",
            "gauge",
            "Subscriptions of every session.",
            &[("", subscriptions)],
        );
        metric(
            "mqtt_retained_messages",
            "gauge",
            "Retained messages stored.",
            &[("", self.shared.retained().len() as u64)],
        );
        if let Some(st) = self.shared.persist().stats() {
            metric(
                "mqtt_store_batches_total",
                "counter",
                "Batches committed to the durable store.",
                &[("", st.batches)],
            );
            metric(
                "mqtt_store_batches_unwritten_total",
                "counter",
                "Batches whose changes all cancelled each other: durable without a write or a sync.",
                &[("", st.batches_unwritten)],
            );
            metric(
                "mqtt_store_ops_total",
                "counter",
                "Changes committed to the durable store: written, or cancelled by a later change in the same batch.",
                &[
                    ("{result=\"written\"}", st.ops_written),
                    ("{result=\"cancelled\"}", st.ops_cancelled),
                ],
            );
            metric(
                "mqtt_store_bytes_written_total",
                "counter",
                "Key and value bytes written to the durable store.",
                &[("", st.bytes_written)],
            );
            metric(
                "mqtt_store_write_errors_total",
                "counter",
                "Failed commits (each retried; nothing is acknowledged meanwhile).",
                &[("", st.write_errors)],
            );
            metric(
                "mqtt_store_failing",
                "gauge",
                "1 while commits to the durable store fail.",
                &[("", u64::from(st.failing))],
            );
            metric(
                "mqtt_store_pending_ops",
                "gauge",
                "Changes waiting for the next batch.",
                &[("", st.pending_ops as u64)],
            );
        }
        if let Some(client_auth) = self.shared.client_auth()
            && client_auth.checks_revocation()
        {
            let o = client_auth.stats();
            metric(
                "mqtt_ocsp_requests_total",
                "counter",
                "OCSP requests sent to responders for client certificates.",
                &[("", o.ocsp_requests)],
            );
            metric(
                "mqtt_ocsp_cache_hits_total",
                "counter",
                "Client-certificate revocation checks answered from the cache.",
                &[("", o.ocsp_cache_hits)],
            );
            metric(
                "mqtt_ocsp_checks_total",
                "counter",
                "Client-certificate revocation checks by outcome.",
                &[
                    ("{outcome=\"good\"}", o.ocsp_good),
                    ("{outcome=\"revoked\"}", o.ocsp_revoked),
                    ("{outcome=\"unknown\"}", o.ocsp_unknown),
                    ("{outcome=\"failed_open\"}", o.ocsp_failed_open),
                    ("{outcome=\"failed_closed\"}", o.ocsp_failed_closed),
                ],
            );
        }
        out
    }
}
