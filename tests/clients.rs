//! The broker driven by real client libraries and programs, as users run it: rumqttc for
//! MQTT 3.1.1 and 5.0, and mosquitto_pub/mosquitto_sub.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{TestBroker, WAIT, require_program};

#[tokio::test]
async fn rumqttc_v311_publishes_and_receives_at_every_qos() {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let broker = TestBroker::start().await;
    let mut opts = MqttOptions::new("rumq-v3", "127.0.0.1", broker.addr.port());
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut events) = AsyncClient::new(opts, 16);
    client.subscribe("rq/#", QoS::ExactlyOnce).await.unwrap();
    let mut received = Vec::new();
    let mut published = false;
    tokio::time::timeout(WAIT, async {
        while received.len() < 3 {
            match events.poll().await.unwrap() {
                Event::Incoming(Packet::SubAck(_)) if !published => {
                    published = true;
                    for (i, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
                        .into_iter()
                        .enumerate()
                    {
                        client
                            .publish(format!("rq/{i}"), qos, false, vec![i as u8])
                            .await
                            .unwrap();
                    }
                }
                Event::Incoming(Packet::Publish(p)) => received.push((p.topic, p.qos)),
                _ => {}
            }
        }
    })
    .await
    .expect("all three messages arrive");
    received.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        received,
        vec![
            ("rq/0".to_string(), QoS::AtMostOnce),
            ("rq/1".to_string(), QoS::AtLeastOnce),
            ("rq/2".to_string(), QoS::ExactlyOnce)
        ]
    );
    broker.stop().await;
}

#[tokio::test]
async fn rumqttc_v5_receives_retained_message_and_properties() {
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
    use rumqttc::v5::{AsyncClient, Event, MqttOptions};
    let broker = TestBroker::start().await;
    let opts = MqttOptions::new("rumq-v5-pub", "127.0.0.1", broker.addr.port());
    let (publisher, mut pub_events) = AsyncClient::new(opts, 16);
    let props = PublishProperties {
        content_type: Some("text/plain".into()),
        user_properties: vec![("origin".into(), "test".into())],
        ..Default::default()
    };
    publisher
        .publish_with_properties("v5/retained", QoS::AtLeastOnce, true, "hello", props)
        .await
        .unwrap();
    tokio::time::timeout(WAIT, async {
        loop {
            if let Event::Incoming(Packet::PubAck(_)) = pub_events.poll().await.unwrap() {
                break;
            }
        }
    })
    .await
    .expect("PUBACK");

    let opts = MqttOptions::new("rumq-v5-sub", "127.0.0.1", broker.addr.port());
    let (sub, mut events) = AsyncClient::new(opts, 16);
    sub.subscribe("v5/+", QoS::AtLeastOnce).await.unwrap();
    let p = tokio::time::timeout(WAIT, async {
        loop {
            if let Event::Incoming(Packet::Publish(p)) = events.poll().await.unwrap() {
                return p;
            }
        }
    })
    .await
    .expect("retained message delivered");
    assert!(p.retain);
    assert_eq!(&p.payload[..], b"hello");
    let props = p.properties.expect("properties forwarded");
    assert_eq!(props.content_type.as_deref(), Some("text/plain"));
    assert_eq!(
        props.user_properties,
        vec![("origin".to_string(), "test".to_string())]
    );
    broker.stop().await;
}

/// mosquitto_pub/mosquitto_sub as users run them: retained and QoS 1/2 messages read back.
#[tokio::test]
async fn mosquitto_clients_round_trip_retained_and_qos_messages() {
    if !require_program("mosquitto_pub") || !require_program("mosquitto_sub") {
        return;
    }
    let broker = TestBroker::start().await;
    let port = broker.addr.port().to_string();
    for (qos, payload) in [("1", "retained-q1"), ("2", "retained-q2")] {
        let topic = format!("mosq/q{qos}");
        let status = tokio::process::Command::new("mosquitto_pub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-V",
                "mqttv311",
                "-q",
                qos,
                "-r",
            ])
            .args(["-t", &topic, "-m", payload])
            .status()
            .await
            .unwrap();
        assert!(status.success());
    }
    // A live QoS 2 message to a waiting v5 subscriber, plus the two retained ones.
    let mut sub = tokio::process::Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-V",
            "mqttv5",
            "-q",
            "2",
            "-v",
        ])
        .args(["-t", "mosq/#", "-C", "3", "-W", "5"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the subscriber's session exists (its retained messages prove the SUBSCRIBE
    // was handled) by publishing only after reading them.
    use tokio::io::AsyncBufReadExt;
    let stdout = sub.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(
            tokio::time::timeout(WAIT, lines.next_line())
                .await
                .unwrap()
                .unwrap()
                .unwrap(),
        );
    }
    let status = tokio::process::Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port, "-V", "mqttv5", "-q", "2"])
        .args(["-t", "mosq/live", "-m", "live-q2"])
        .status()
        .await
        .unwrap();
    assert!(status.success());
    got.push(
        tokio::time::timeout(WAIT, lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap(),
    );
    assert!(
        tokio::time::timeout(WAIT, sub.wait())
            .await
            .unwrap()
            .unwrap()
            .success()
    );
    got.sort();
    assert_eq!(
        got,
        [
            "mosq/live live-q2",
            "mosq/q1 retained-q1",
            "mosq/q2 retained-q2"
        ]
    );
    broker.stop().await;
}
