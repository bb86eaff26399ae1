//! The retained message store (§3.3.1.3): the last retained message of each topic.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
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
    /// Bytes (topic and payload, [`Message::size`]) of all stored messages.
    fn bytes(&self) -> usize;
    /// The size of the message stored for `topic`, if any.
    fn size_of(&self, topic: &TopicName) -> Option<usize>;
}

/// Retained messages in a trie of topic levels: a wildcard subscription walks only the branches
/// its filter can match, instead of every retained message. Walks and removals use explicit
/// stacks, never recursion, so a topic of thousands of levels cannot exhaust the stack.
#[derive(Debug, Default)]
pub(crate) struct MemoryRetained {
    root: RwLock<Node>,
    count: AtomicUsize,
    bytes: AtomicUsize,
}

#[derive(Debug, Default)]
struct Node {
    message: Option<Arc<Message>>,
    children: HashMap<Box<str>, Node>,
}

impl Drop for Node {
    /// Takes the subtree apart level by level: the default drop would recurse once per level.
    fn drop(&mut self) {
        let mut below: Vec<Node> = self.children.drain().map(|(_, n)| n).collect();
        while let Some(mut node) = below.pop() {
            below.extend(node.children.drain().map(|(_, n)| n));
        }
    }
}

impl MemoryRetained {
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Node> {
        self.root.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Node> {
        self.root.read().unwrap_or_else(|p| p.into_inner())
    }

    fn insert(&self, topic: &TopicName, message: Arc<Message>) {
        let mut root = self.write();
        let mut node = &mut *root;
        for level in topic.as_str().split('/') {
            node = node.children.entry(level.into()).or_default();
        }
        self.bytes.fetch_add(message.size(), Ordering::Relaxed);
        match node.message.replace(message) {
            Some(old) => {
                self.bytes.fetch_sub(old.size(), Ordering::Relaxed);
            }
            None => {
                self.count.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn remove(&self, topic: &TopicName) {
        let levels: Vec<&str> = topic.as_str().split('/').collect();
        let mut root = self.write();
        // Find the message, and the highest branch that holds nothing else once it is gone.
        let mut cut = 0;
        let mut node = &*root;
        for (depth, level) in levels.iter().enumerate() {
            if node.children.len() > 1 || (depth > 0 && node.message.is_some()) {
                cut = depth;
            }
            match node.children.get(*level) {
                Some(child) => node = child,
                None => return,
            }
        }
        let Some(old) = &node.message else {
            return;
        };
        self.count.fetch_sub(1, Ordering::Relaxed);
        self.bytes.fetch_sub(old.size(), Ordering::Relaxed);
        if !node.children.is_empty() {
            let mut node = &mut *root;
            for level in &levels {
                match node.children.get_mut(*level) {
                    Some(child) => node = child,
                    None => return,
                }
            }
            node.message = None;
            return;
        }
        // Nothing below it: drop the whole branch that held only this message.
        let mut node = &mut *root;
        for level in &levels[..cut] {
            match node.children.get_mut(*level) {
                Some(child) => node = child,
                None => return,
            }
        }
        node.children.remove(levels[cut]);
    }
}

impl RetainedStore for MemoryRetained {
    fn set(&self, topic: &TopicName, message: Option<Arc<Message>>) {
        match message {
            Some(m) => self.insert(topic, m),
            None => self.remove(topic),
        }
    }

    fn matching(&self, filter: &TopicFilter, now: Instant) -> Vec<Arc<Message>> {
        let levels: Vec<&str> = filter.filter().split('/').collect();
        let root = self.read();
        let mut out = Vec::new();
        let keep = |node: &Node, out: &mut Vec<Arc<Message>>| {
            if let Some(m) = &node.message
                && !m.is_expired(now)
            {
                out.push(m.clone());
            }
        };
        // (node, index of the filter level to match against its children)
        let mut stack: Vec<(&Node, usize)> = vec![(&root, 0)];
        while let Some((node, i)) = stack.pop() {
            let at_root = i == 0;
            // [MQTT-4.7.2-1]: a filter starting with a wildcard does not match `$` topics.
            let visible = |name: &str| !(at_root && name.starts_with('$'));
            match levels.get(i) {
                None => keep(node, &mut out),
                Some(&"#") => {
                    // `a/#` also matches `a`.
                    if !at_root {
                        keep(node, &mut out);
                    }
                    let mut below: Vec<&Node> = node
                        .children
                        .iter()
                        .filter(|(name, _)| visible(name))
                        .map(|(_, child)| child)
                        .collect();
                    while let Some(n) = below.pop() {
                        keep(n, &mut out);
                        below.extend(n.children.values());
                    }
                }
                Some(&"+") => stack.extend(
                    node.children
                        .iter()
                        .filter(|(name, _)| visible(name))
                        .map(|(_, child)| (child, i + 1)),
                ),
                Some(level) => {
                    if let Some(child) = node.children.get(*level) {
                        stack.push((child, i + 1));
                    }
                }
            }
        }
        out
    }

    fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    fn size_of(&self, topic: &TopicName) -> Option<usize> {
        let root = self.read();
        let mut node = &*root;
        for level in topic.as_str().split('/') {
            node = node.children.get(level)?;
        }
        node.message.as_ref().map(|m| m.size())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(topic: &str) -> Arc<Message> {
        Arc::new(Message::new(
            TopicName::try_from(topic).unwrap(),
            bytes::Bytes::from_static(b"x"),
            codec::QoS::AtMostOnce,
            true,
        ))
    }

    fn topics(store: &MemoryRetained, filter: &str) -> Vec<String> {
        let mut found: Vec<String> = store
            .matching(&TopicFilter::try_from(filter).unwrap(), Instant::now())
            .iter()
            .map(|m| m.topic.as_str().to_owned())
            .collect();
        found.sort();
        found
    }

    #[test]
    fn wildcards_match_as_the_spec_says_and_removal_prunes() {
        let store = MemoryRetained::default();
        for t in ["a", "a/b", "a/b/c", "a//c", "x/b", "$SYS/a", "/lead"] {
            store.set(&TopicName::try_from(t).unwrap(), Some(message(t)));
        }
        assert_eq!(store.len(), 7);
        assert_eq!(topics(&store, "a/#"), ["a", "a//c", "a/b", "a/b/c"]);
        assert_eq!(topics(&store, "+/b"), ["a/b", "x/b"]);
        assert_eq!(topics(&store, "a/+/c"), ["a//c", "a/b/c"]);
        assert_eq!(
            topics(&store, "#").len(),
            6,
            "no $SYS for a leading wildcard"
        );
        assert_eq!(topics(&store, "$SYS/#"), ["$SYS/a"]);
        assert_eq!(topics(&store, "+/lead"), ["/lead"]);
        assert_eq!(topics(&store, "a/b"), ["a/b"]);
        assert!(topics(&store, "a/b/c/d").is_empty());

        // Clearing keeps what is above and below.
        store.set(&TopicName::try_from("a/b").unwrap(), None);
        assert_eq!(topics(&store, "a/#"), ["a", "a//c", "a/b/c"]);
        store.set(&TopicName::try_from("a/b/c").unwrap(), None);
        store.set(&TopicName::try_from("a//c").unwrap(), None);
        store.set(&TopicName::try_from("missing/topic").unwrap(), None);
        assert_eq!(topics(&store, "a/#"), ["a"]);
        assert_eq!(store.len(), 4);
        let root = store.read();
        let a = &root.children["a"];
        assert!(a.children.is_empty(), "emptied branches are pruned: {a:?}");
    }

    #[test]
    fn a_topic_of_many_levels_is_handled_without_recursion() {
        let store = MemoryRetained::default();
        let deep = vec!["l"; 30_000].join("/");
        let name = TopicName::try_from(deep.as_str()).unwrap();
        store.set(&name, Some(message(&deep)));
        let filter = vec!["+"; 30_000].join("/");
        assert_eq!(topics(&store, &filter).len(), 1);
        assert_eq!(topics(&store, "#").len(), 1);
        store.set(&name, None);
        assert_eq!(store.len(), 0);
        assert!(store.read().children.is_empty());
    }
}
