//! The subscription index: a trie of topic levels that finds every subscription matching a
//! topic name without looking at the others. Shared subscriptions keep their groups at the
//! node of their filter.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use auth::Identity;
use codec::{SubscriptionId, SubscriptionOptions, TopicFilter};

use crate::session::{Session, Subscription};

/// One subscriber of one filter.
#[derive(Debug, Clone)]
pub(crate) struct Subscriber {
    pub session: Arc<Session>,
    pub options: SubscriptionOptions,
    pub id: Option<SubscriptionId>,
    /// Who subscribed, for the read check on every delivery.
    pub identity: Arc<Identity>,
}

impl Subscriber {
    /// `session`'s subscription `s`, reading with `identity`.
    pub fn new(session: &Arc<Session>, s: &Subscription, identity: &Arc<Identity>) -> Self {
        Self {
            session: session.clone(),
            options: s.options,
            id: s.id,
            identity: identity.clone(),
        }
    }
}

/// The members of one shared subscription `$share/{group}/{filter}`; each message goes to one.
#[derive(Debug, Default)]
struct SharedGroup {
    members: Vec<Subscriber>,
    /// Round-robin position.
    next: AtomicUsize,
}

#[derive(Debug, Default)]
struct Subscribers {
    plain: Vec<Subscriber>,
    shared: HashMap<Box<str>, SharedGroup>,
}

impl Subscribers {
    fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.shared.is_empty()
    }

    fn insert(&mut self, group: Option<&str>, sub: Subscriber) {
        let list = match group {
            Some(g) => &mut self.shared.entry(g.into()).or_default().members,
            None => &mut self.plain,
        };
        match list.iter_mut().find(|s| s.session.id == sub.session.id) {
            Some(existing) => *existing = sub,
            None => list.push(sub),
        }
    }

    fn remove(&mut self, group: Option<&str>, session_id: u64) -> bool {
        match group {
            None => remove_member(&mut self.plain, session_id),
            Some(g) => {
                let Some(shared) = self.shared.get_mut(g) else {
                    return false;
                };
                let removed = remove_member(&mut shared.members, session_id);
                if shared.members.is_empty() {
                    self.shared.remove(g);
                }
                removed
            }
        }
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a Subscriber>, wants: &impl Fn(&Subscriber) -> bool) {
        // Reserved first: a filtered iterator gives no size hint, and growing `out` by doubling
        // costs a fan-out several allocations per message.
        out.reserve(self.plain.len() + self.shared.len());
        out.extend(self.plain.iter().filter(|s| wants(s)));
        for group in self.shared.values() {
            if let Some(member) = group.pick(wants) {
                out.push(member);
            }
        }
    }
}

fn remove_member(list: &mut Vec<Subscriber>, session_id: u64) -> bool {
    let before = list.len();
    list.retain(|s| s.session.id != session_id);
    list.len() != before
}

impl SharedGroup {
    /// Round-robin over the members that `want` the message (that may read it), preferring
    /// ones whose client is connected; an offline member is chosen only when no member is
    /// online, so its queue keeps the message. `None` when no member may have it.
    fn pick(&self, wants: &impl Fn(&Subscriber) -> bool) -> Option<&Subscriber> {
        let n = self.members.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut offline = None;
        for i in 0..n {
            let member = &self.members[(start + i) % n];
            if !wants(member) {
                continue;
            }
            if member.session.lock().is_connected() {
                return Some(member);
            }
            offline = offline.or(Some(member));
        }
        offline
    }
}

#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    plus: Option<Box<Node>>,
    /// Subscriptions whose filter ends at this node.
    exact: Subscribers,
    /// Subscriptions whose filter ends with `#` after this node.
    multi: Subscribers,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty()
            && self.plus.is_none()
            && self.exact.is_empty()
            && self.multi.is_empty()
    }

    /// Holds nothing but the one branch a path goes through.
    fn only_passes_through(&self) -> bool {
        self.exact.is_empty()
            && self.multi.is_empty()
            && self.children.len() + usize::from(self.plus.is_some()) == 1
    }

    fn child(&self, level: &str) -> Option<&Node> {
        if level == "+" {
            self.plus.as_deref()
        } else {
            self.children.get(level)
        }
    }

    fn child_mut(&mut self, level: &str) -> Option<&mut Node> {
        if level == "+" {
            self.plus.as_deref_mut()
        } else {
            self.children.get_mut(level)
        }
    }
}

impl Drop for Node {
    /// Takes the subtree apart level by level: the default drop would recurse once per level,
    /// and a client may subscribe to a filter of thousands of levels.
    fn drop(&mut self) {
        let mut below: Vec<Node> = self.children.drain().map(|(_, n)| n).collect();
        below.extend(self.plus.take().map(|n| *n));
        while let Some(mut node) = below.pop() {
            below.extend(node.children.drain().map(|(_, n)| n));
            below.extend(node.plus.take().map(|n| *n));
        }
    }
}

/// Every subscription of every session, by filter.
#[derive(Debug, Default)]
pub(crate) struct SubscriptionIndex {
    root: Node,
    count: usize,
}

impl SubscriptionIndex {
    /// Adds or replaces `sub`'s subscription to `filter`.
    pub fn insert(&mut self, filter: &TopicFilter, sub: Subscriber) {
        let mut node = &mut self.root;
        let mut levels = filter.filter().split('/').peekable();
        let mut target_multi = false;
        while let Some(level) = levels.next() {
            match level {
                "#" if levels.peek().is_none() => target_multi = true,
                "+" => node = node.plus.get_or_insert_with(Box::default),
                _ => node = node.children.entry(level.into()).or_default(),
            }
        }
        let subscribers = if target_multi {
            &mut node.multi
        } else {
            &mut node.exact
        };
        let before = subscribers.plain.len()
            + subscribers
                .shared
                .values()
                .map(|g| g.members.len())
                .sum::<usize>();
        subscribers.insert(filter.share_group(), sub);
        let after = subscribers.plain.len()
            + subscribers
                .shared
                .values()
                .map(|g| g.members.len())
                .sum::<usize>();
        self.count += after - before;
    }

    /// Removes a session's subscription to `filter`; true if it existed. Emptied branches are
    /// pruned. No recursion: a filter may have thousands of levels.
    pub fn remove(&mut self, filter: &TopicFilter, session_id: u64) -> bool {
        let mut levels: Vec<&str> = filter.filter().split('/').collect();
        let multi = levels.last() == Some(&"#");
        if multi {
            levels.pop();
        }
        // The highest edge below which nothing but this path would be left.
        let mut cut = 0;
        let mut node = &self.root;
        for (depth, level) in levels.iter().enumerate() {
            if depth > 0 && !node.only_passes_through() {
                cut = depth;
            }
            match node.child(level) {
                Some(child) => node = child,
                None => return false,
            }
        }
        if !levels.is_empty() && !node.only_passes_through() && !node.children.is_empty() {
            // The target has branches of its own: it stays whatever happens.
            cut = levels.len();
        }
        let mut node = &mut self.root;
        for level in &levels {
            match node.child_mut(level) {
                Some(child) => node = child,
                None => return false,
            }
        }
        let subscribers = if multi {
            &mut node.multi
        } else {
            &mut node.exact
        };
        if !subscribers.remove(filter.share_group(), session_id) {
            return false;
        }
        self.count -= 1;
        if node.is_empty() && cut < levels.len() {
            let mut node = &mut self.root;
            for level in &levels[..cut] {
                match node.child_mut(level) {
                    Some(child) => node = child,
                    None => return true,
                }
            }
            if levels[cut] == "+" {
                node.plus = None;
            } else {
                node.children.remove(levels[cut]);
            }
        }
        true
    }

    /// Number of subscriptions.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Appends every subscriber whose filter matches `topic` (one member per shared group).
    /// Walks with an explicit stack: a topic may have thousands of levels.
    /// Every subscription matching `topic` that `wants` it (one member per shared group, among
    /// those that want it), into `out`.
    pub fn matches<'a>(
        &'a self,
        topic: &str,
        out: &mut Vec<&'a Subscriber>,
        wants: &impl Fn(&Subscriber) -> bool,
    ) {
        let levels: Vec<&str> = topic.split('/').collect();
        let system = topic.starts_with('$');
        let mut stack: Vec<(&Node, usize)> = vec![(&self.root, 0)];
        while let Some((node, depth)) = stack.pop() {
            // [MQTT-4.7.2-1]: a wildcard in the first level never matches a topic starting
            // with `$`.
            let wildcard_ok = !(depth == 0 && system);
            if wildcard_ok {
                // `#` matches this level's parent too: `a/#` matches `a`.
                node.multi.collect(out, wants);
            }
            let Some(level) = levels.get(depth) else {
                node.exact.collect(out, wants);
                continue;
            };
            if wildcard_ok && let Some(plus) = &node.plus {
                stack.push((plus, depth + 1));
            }
            if let Some(child) = node.children.get(*level) {
                stack.push((child, depth + 1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Expiry;
    use codec::TopicName;

    fn sub(session: &Arc<Session>) -> Subscriber {
        Subscriber {
            session: session.clone(),
            options: SubscriptionOptions::default(),
            id: None,
            identity: Arc::default(),
        }
    }

    fn matched(index: &SubscriptionIndex, topic: &str) -> Vec<u64> {
        let mut out = Vec::new();
        index.matches(topic, &mut out, &|_| true);
        let mut ids: Vec<u64> = out.iter().map(|s| s.session.id).collect();
        ids.sort();
        ids
    }

    #[test]
    fn agrees_with_the_codec_matcher() {
        let filters = [
            "#", "+", "a/#", "a/+", "a/b", "+/b", "+/+/c", "a/+/#", "$SYS/#", "/+", "a//b",
        ];
        let topics = [
            "a", "a/b", "a/c", "b/b", "a/b/c", "x/y/c", "$SYS/x", "/x", "a//b", "a/",
        ];
        let sessions: Vec<_> = filters
            .iter()
            .map(|_| Session::new(Arc::from("c"), Expiry::OnClose))
            .collect();
        let mut index = SubscriptionIndex::default();
        for (f, s) in filters.iter().zip(&sessions) {
            index.insert(&TopicFilter::try_from(*f).unwrap(), sub(s));
        }
        assert_eq!(index.len(), filters.len());
        for topic in topics {
            let name = TopicName::try_from(topic).unwrap();
            let mut expected: Vec<u64> = filters
                .iter()
                .zip(&sessions)
                .filter(|(f, _)| TopicFilter::try_from(**f).unwrap().matches(&name))
                .map(|(_, s)| s.id)
                .collect();
            expected.sort();
            assert_eq!(matched(&index, topic), expected, "topic {topic}");
        }
    }

    #[test]
    fn removal_prunes_and_counts() {
        let s = Session::new(Arc::from("c"), Expiry::OnClose);
        let mut index = SubscriptionIndex::default();
        let f = TopicFilter::try_from("a/+/c/#").unwrap();
        index.insert(&f, sub(&s));
        index.insert(&f, sub(&s));
        assert_eq!(index.len(), 1);
        assert!(index.remove(&f, s.id));
        assert!(!index.remove(&f, s.id));
        assert_eq!(index.len(), 0);
        assert!(index.root.is_empty());
    }

    #[test]
    fn shared_group_delivers_to_one_member_in_turn() {
        let a = Session::new(Arc::from("a"), Expiry::OnClose);
        let b = Session::new(Arc::from("b"), Expiry::OnClose);
        let mut index = SubscriptionIndex::default();
        let f = TopicFilter::try_from("$share/g/t/+").unwrap();
        index.insert(&f, sub(&a));
        index.insert(&f, sub(&b));
        let first = matched(&index, "t/1");
        let second = matched(&index, "t/1");
        assert_eq!(first.len(), 1);
        assert_eq!(second.len(), 1);
        assert_ne!(first, second);
    }

    #[test]
    fn filters_and_topics_of_thousands_of_levels_cannot_exhaust_the_stack() {
        let session = Session::new(Arc::from("deep"), Expiry::OnClose);
        let mut index = SubscriptionIndex::default();
        let topic = vec!["l"; 30_000].join("/");
        let plus = vec!["+"; 29_999].join("/") + "/#";
        for filter in [topic.as_str(), plus.as_str()] {
            index.insert(&TopicFilter::try_from(filter).unwrap(), sub(&session));
        }
        assert_eq!(matched(&index, &topic).len(), 2);
        assert!(index.remove(&TopicFilter::try_from(topic.as_str()).unwrap(), session.id));
        assert_eq!(matched(&index, &topic).len(), 1);
        assert!(index.remove(&TopicFilter::try_from(plus.as_str()).unwrap(), session.id));
        assert!(index.root.is_empty(), "every emptied branch is pruned");
        // And a deep index is dropped without recursion.
        index.insert(
            &TopicFilter::try_from(topic.as_str()).unwrap(),
            sub(&session),
        );
        drop(index);
    }

    #[test]
    fn removal_prunes_only_what_it_emptied() {
        let a = Session::new(Arc::from("a"), Expiry::OnClose);
        let mut index = SubscriptionIndex::default();
        for f in ["x/y/z", "x/y", "x/+/z", "x/#"] {
            index.insert(&TopicFilter::try_from(f).unwrap(), sub(&a));
        }
        assert!(index.remove(&TopicFilter::try_from("x/y/z").unwrap(), a.id));
        assert_eq!(matched(&index, "x/y/z").len(), 2, "x/+/z and x/# stay");
        assert_eq!(matched(&index, "x/y").len(), 2, "x/y and x/# stay");
        assert!(!index.remove(&TopicFilter::try_from("x/y/z").unwrap(), a.id));
        for f in ["x/y", "x/+/z", "x/#"] {
            assert!(
                index.remove(&TopicFilter::try_from(f).unwrap(), a.id),
                "{f}"
            );
        }
        assert!(index.root.is_empty());
        assert_eq!(index.len(), 0);
    }
}
