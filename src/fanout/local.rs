//! The fan-out within one process. Each `Local` handle is one node; handles made from the same
//! [`Hub`] reach each other (several servers in one test process), and a server alone on its hub
//! — the embedded default — has nobody to reach, so publishing costs one map lookup.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use futures_util::future::BoxFuture;

use super::{Delivery, Fanout, Subscriber, Topic};

#[derive(Default)]
pub struct Hub {
    subscribers: Mutex<HashMap<String, Vec<Subscription>>>,
    leases: Mutex<HashMap<String, (String, Instant)>>,
    next_id: AtomicU64,
    nodes: AtomicU64,
}

struct Subscription {
    id: u64,
    node: Arc<str>,
    subscriber: Subscriber,
}

pub struct Local {
    hub: Arc<Hub>,
    node: Arc<str>,
}

impl Hub {
    /// A new node on this hub.
    pub fn node(self: &Arc<Self>) -> Local {
        let n = self.nodes.fetch_add(1, Ordering::Relaxed);
        Local {
            hub: Arc::clone(self),
            node: Arc::from(format!("local-{n}")),
        }
    }

    fn is_shared(&self) -> bool {
        self.nodes.load(Ordering::Relaxed) > 1
    }
}

impl Local {
    /// A process alone: the embedded default.
    pub fn alone() -> Self {
        Arc::new(Hub::default()).node()
    }
}

fn key(topic: Topic<'_>) -> String {
    match topic {
        Topic::Room(id) => format!("room:{id}"),
        Topic::Tastes => "tastes".to_string(),
    }
}

impl Fanout for Local {
    fn node(&self) -> &str {
        &self.node
    }

    fn shared(&self) -> bool {
        self.hub.is_shared()
    }

    fn publish(&self, topic: Topic<'_>, body: String) {
        if !self.hub.is_shared() {
            return;
        }
        let subscribers = self.hub.subscribers.lock().expect("hub lock");
        let Some(subscribed) = subscribers.get(&key(topic)) else {
            return;
        };
        let body: Arc<str> = Arc::from(body);
        for s in subscribed.iter().filter(|s| s.node != self.node) {
            (s.subscriber)(Delivery::Message {
                from: Arc::clone(&self.node),
                body: Arc::clone(&body),
            });
        }
    }

    fn subscribe(&self, topic: Topic<'_>, subscriber: Subscriber) -> u64 {
        let id = self.hub.next_id.fetch_add(1, Ordering::Relaxed);
        subscriber(Delivery::Subscribed);
        self.hub
            .subscribers
            .lock()
            .expect("hub lock")
            .entry(key(topic))
            .or_default()
            .push(Subscription {
                id,
                node: Arc::clone(&self.node),
                subscriber,
            });
        id
    }

    fn unsubscribe(&self, topic: Topic<'_>, id: u64) {
        let mut subscribers = self.hub.subscribers.lock().expect("hub lock");
        let key = key(topic);
        if let Some(subscribed) = subscribers.get_mut(&key) {
            subscribed.retain(|s| s.id != id);
            if subscribed.is_empty() {
                subscribers.remove(&key);
            }
        }
    }

    fn hold(&self, name: &str, ttl: Duration) -> BoxFuture<'static, anyhow::Result<bool>> {
        let mut leases = self.hub.leases.lock().expect("hub lock");
        let now = Instant::now();
        let held = match leases.get(name) {
            Some((holder, until)) if *until > now && **holder != *self.node => false,
            _ => {
                leases.insert(name.to_string(), (self.node.to_string(), now + ttl));
                true
            }
        };
        Box::pin(async move { Ok(held) })
    }

    fn release(&self, name: &str) {
        let mut leases = self.hub.leases.lock().expect("hub lock");
        if leases
            .get(name)
            .is_some_and(|(holder, _)| **holder == *self.node)
        {
            leases.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collector() -> (Subscriber, Arc<Mutex<Vec<String>>>) {
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&got);
        let subscriber: Subscriber = Arc::new(move |delivery| {
            if let Delivery::Message { from, body } = delivery {
                sink.lock().unwrap().push(format!("{from}:{body}"));
            }
        });
        (subscriber, got)
    }

    #[test]
    fn messages_reach_the_other_nodes_on_the_topic_only() {
        let hub = Arc::new(Hub::default());
        let (a, b) = (hub.node(), hub.node());
        let (to_a, got_a) = collector();
        let (to_b, got_b) = collector();
        a.subscribe(Topic::Room("r1"), to_a);
        let id = b.subscribe(Topic::Room("r1"), to_b);
        a.publish(Topic::Room("r1"), "one".into());
        a.publish(Topic::Room("r2"), "elsewhere".into());
        b.publish(Topic::Room("r1"), "two".into());
        assert_eq!(*got_a.lock().unwrap(), vec!["local-1:two"]);
        assert_eq!(*got_b.lock().unwrap(), vec!["local-0:one"]);
        b.unsubscribe(Topic::Room("r1"), id);
        a.publish(Topic::Room("r1"), "three".into());
        assert_eq!(got_b.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_process_alone_is_not_shared_and_holds_every_lease() {
        let alone = Local::alone();
        assert!(!alone.shared());
        let held =
            futures_util::FutureExt::now_or_never(alone.hold("room:r1", Duration::from_secs(5)));
        assert!(held.unwrap().unwrap());
    }

    #[test]
    fn a_lease_is_one_node_s_until_it_expires_or_is_released() {
        let hub = Arc::new(Hub::default());
        let (a, b) = (hub.node(), hub.node());
        let hold = |node: &Local, ttl_ms| {
            futures_util::FutureExt::now_or_never(node.hold("r", Duration::from_millis(ttl_ms)))
                .unwrap()
                .unwrap()
        };
        assert!(hold(&a, 60_000));
        assert!(!hold(&b, 60_000));
        assert!(hold(&a, 60_000), "the holder extends it");
        a.release("r");
        assert!(hold(&b, 1));
        std::thread::sleep(Duration::from_millis(5));
        assert!(hold(&a, 60_000), "an expired lease is free");
    }
}
