//! The retained message store (§3.3.1.3): the last retained message of each topic.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use codec::{TopicFilter, TopicName};

use crate::message::Message;

/// Where retained messages live. The in-memory store below is the default; the durable store
/// implements the same trait.
pub(crate) trait RetainedStore: Send + Sync {
    /// Stores `message` for `topic`, or clears the topic with `None`.
    fn set(&self, topic: &TopicName, message: Option<Arc<Message>>);
    /// Every unexpired retained message whose topic matches `filter`.
    fn matching(&self, filter: &TopicFilter, now: Instant) -> Vec<Arc<Message>>;
    /// Number of stored messages.
    fn len(&self) -> usize;
}

/// Retained messages in a hash map; wildcard lookups scan it.
#[derive(Debug, Default)]
pub(crate) struct MemoryRetained {
    map: RwLock<HashMap<TopicName, Arc<Message>>>,
}

impl RetainedStore for MemoryRetained {
    fn set(&self, topic: &TopicName, message: Option<Arc<Message>>) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        match message {
            Some(m) => {
                map.insert(topic.clone(), m);
            }
            None => {
                map.remove(topic);
            }
        }
    }

    fn matching(&self, filter: &TopicFilter, now: Instant) -> Vec<Arc<Message>> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        if !filter.has_wildcards() {
            return TopicName::try_from(filter.filter())
                .ok()
                .and_then(|name| map.get(&name))
                .filter(|m| !m.is_expired(now))
                .cloned()
                .into_iter()
                .collect();
        }
        map.values()
            .filter(|m| !m.is_expired(now) && filter.matches(&m.topic))
            .cloned()
            .collect()
    }

    fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|p| p.into_inner()).len()
    }
}
