//! Entry points for the criterion benchmarks (`crates/server/benches`) into the broker's hot
//! paths, which are otherwise private. Not part of the supported API.

use std::sync::Arc;
use std::time::Instant;

use codec::{QoS, SubscriptionOptions, TopicFilter, TopicName};

use crate::index::{Subscriber, SubscriptionIndex};
use crate::message::Message;
use crate::retained::{MemoryRetained, RetainedStore};
use crate::session::{Expiry, Session};

/// A subscription index filled with one session per filter.
#[derive(Debug, Default)]
pub struct IndexBench {
    index: SubscriptionIndex,
}

impl IndexBench {
    /// An index holding `filters`, each subscribed by its own session.
    pub fn new<'a>(filters: impl IntoIterator<Item = &'a str>) -> Self {
        let mut index = SubscriptionIndex::default();
        for (i, filter) in filters.into_iter().enumerate() {
            let Ok(filter) = TopicFilter::try_from(filter) else {
                continue;
            };
            let session = Session::new(Arc::from(format!("bench-{i}").as_str()), Expiry::OnClose);
            index.insert(
                &filter,
                Subscriber {
                    session,
                    options: SubscriptionOptions::with_qos(QoS::AtMostOnce),
                    id: None,
                    identity: Arc::default(),
                },
            );
        }
        Self { index }
    }

    /// How many subscriptions match `topic` (what routing a PUBLISH looks up).
    pub fn matches(&self, topic: &str) -> usize {
        let mut out = Vec::new();
        self.index.matches(topic, &mut out, &|_| true);
        out.len()
    }
}

/// A retained-message store filled with one message per topic.
#[derive(Debug, Default)]
pub struct RetainedBench {
    store: MemoryRetained,
}

impl RetainedBench {
    /// A store holding a small retained message on each of `topics`.
    pub fn new<'a>(topics: impl IntoIterator<Item = &'a str>) -> Self {
        let store = MemoryRetained::default();
        for topic in topics {
            let Ok(name) = TopicName::try_from(topic) else {
                continue;
            };
            let message = Arc::new(Message::new(
                name.clone(),
                bytes::Bytes::from_static(b"retained"),
                QoS::AtMostOnce,
                true,
            ));
            store.set(&name, Some(message));
        }
        Self { store }
    }

    /// How many retained messages a subscription to `filter` receives.
    pub fn matching(&self, filter: &str) -> usize {
        TopicFilter::try_from(filter)
            .map(|f| self.store.matching(&f, Instant::now()).len())
            .unwrap_or(0)
    }
}
