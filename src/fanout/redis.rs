//! The fan-out through Redis: pub/sub for messages (one channel per room, one for tastes) and
//! `SET NX PX` leases.
//!
//! One RESP3 connection, reconnected by the connection manager and resubscribed automatically.
//! Subscribing, unsubscribing and publishing go through one task in order, so a room's messages
//! leave in the order they were published (publishes that queued meanwhile go as one pipeline).
//! When the connection drops, a pinger brings it back and every subscriber is told
//! `Reconnected` (they read what they missed from the store).

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use anyhow::Context;
use futures_util::future::BoxFuture;
use redis::{
    aio::ConnectionManager, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, Value,
};
use tokio::sync::mpsc;

use super::{Delivery, Fanout, Subscriber, Topic};
use crate::redis_link;

/// Publishes sent as one pipeline at most.
const MAX_PIPELINE: usize = 256;
/// Between pings while the connection is down.
const PING_EVERY: Duration = Duration::from_millis(250);

const HOLD: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
elseif not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0";

pub struct RedisFanout {
    node: Arc<str>,
    prefix: String,
    connection: ConnectionManager,
    commands: mpsc::UnboundedSender<Command>,
    subscribers: Arc<Subscribers>,
    hold: redis::Script,
    release: redis::Script,
}

#[derive(Default)]
struct Subscribers {
    by_channel: Mutex<HashMap<String, Vec<(u64, Subscriber)>>>,
    next_id: AtomicU64,
}

enum Command {
    Subscribe(String),
    Unsubscribe(String),
    Publish(String, String),
}

impl Subscribers {
    fn deliver(&self, channel: &str, delivery: Delivery) {
        let subscribed: Vec<Subscriber> = {
            let by_channel = self.by_channel.lock().expect("subscribers lock");
            by_channel
                .get(channel)
                .into_iter()
                .flatten()
                .map(|(_, s)| Arc::clone(s))
                .collect()
        };
        notify(subscribed, delivery);
    }

    fn deliver_all(&self, delivery: Delivery) {
        let subscribed: Vec<Subscriber> = {
            let by_channel = self.by_channel.lock().expect("subscribers lock");
            by_channel
                .values()
                .flatten()
                .map(|(_, s)| Arc::clone(s))
                .collect()
        };
        notify(subscribed, delivery);
    }
}

/// Calls the subscribers, outside the lock (a subscriber may subscribe or unsubscribe).
fn notify(subscribed: Vec<Subscriber>, delivery: Delivery) {
    for subscriber in subscribed {
        subscriber(delivery.clone());
    }
}

impl RedisFanout {
    /// Connects (within [`redis_link::STARTUP_DEADLINE`]) and starts the fan-out's tasks.
    pub async fn connect(url: &str, prefix: &str, node: String) -> anyhow::Result<Arc<Self>> {
        let info = url.into_connection_info().context("parsing REDIS_URL")?;
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client =
            redis::Client::open(info.set_redis_settings(settings)).context("parsing REDIS_URL")?;
        let (pushes, mut pushed) = mpsc::unbounded_channel::<PushInfo>();
        let config = redis_link::manager_config()
            .set_push_sender(pushes)
            .set_automatic_resubscription();
        let connection = tokio::time::timeout(
            redis_link::STARTUP_DEADLINE,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "Redis (REDIS_URL) did not answer within {} s",
                redis_link::STARTUP_DEADLINE.as_secs()
            )
        })?
        .context("connecting the room fan-out to Redis (REDIS_URL)")?;
        let (commands, queue) = mpsc::unbounded_channel();
        let fanout = Arc::new(Self {
            node: Arc::from(node),
            prefix: prefix.to_string(),
            connection: connection.clone(),
            commands,
            subscribers: Arc::default(),
            hold: redis::Script::new(HOLD),
            release: redis::Script::new(RELEASE),
        });
        tokio::spawn(send_in_order(
            connection.clone(),
            queue,
            Arc::clone(&fanout.subscribers),
        ));
        let (subscribers, node) = (Arc::clone(&fanout.subscribers), Arc::clone(&fanout.node));
        let down = Arc::new(AtomicBool::new(false));
        tokio::spawn(async move {
            while let Some(push) = pushed.recv().await {
                match push.kind {
                    PushKind::Message => on_message(&subscribers, &node, push.data),
                    PushKind::Disconnection if !down.swap(true, Ordering::SeqCst) => {
                        tracing::warn!("the room fan-out lost Redis; reconnecting");
                        tokio::spawn(reconnect(
                            connection.clone(),
                            Arc::clone(&subscribers),
                            Arc::clone(&down),
                        ));
                    }
                    _ => {}
                }
            }
        });
        Ok(fanout)
    }

    fn channel(&self, topic: Topic<'_>) -> String {
        match topic {
            Topic::Room(id) => format!("{}room:{id}", self.prefix),
            Topic::Tastes => format!("{}tastes", self.prefix),
        }
    }

    fn lease_key(&self, name: &str) -> String {
        format!("{}lease:{name}", self.prefix)
    }
}

/// A pub/sub message: `[channel, payload]`, the payload `node\nbody`.
fn on_message(subscribers: &Subscribers, node: &str, data: Vec<Value>) {
    let [channel, payload] = data.as_slice() else {
        return;
    };
    let (Ok(channel), Ok(payload)) = (
        redis::from_redis_value_ref::<String>(channel),
        redis::from_redis_value_ref::<String>(payload),
    ) else {
        return;
    };
    let Some((from, body)) = payload.split_once('\n') else {
        return;
    };
    if from == node {
        return;
    }
    subscribers.deliver(
        &channel,
        Delivery::Message {
            from: Arc::from(from),
            body: Arc::from(body),
        },
    );
}

/// Pings until the connection is back (which resubscribes), then tells every subscriber.
async fn reconnect(
    mut connection: ConnectionManager,
    subscribers: Arc<Subscribers>,
    down: Arc<AtomicBool>,
) {
    loop {
        tokio::time::sleep(PING_EVERY).await;
        let pong: anyhow::Result<String> = redis_link::within(
            "fan-out ping",
            redis::cmd("PING").query_async(&mut connection),
        )
        .await;
        if pong.is_ok() {
            break;
        }
    }
    down.store(false, Ordering::SeqCst);
    tracing::info!("the room fan-out is back on Redis");
    subscribers.deliver_all(Delivery::Reconnected);
}

async fn send_in_order(
    mut connection: ConnectionManager,
    mut queue: mpsc::UnboundedReceiver<Command>,
    subscribers: Arc<Subscribers>,
) {
    let mut failures = 0u64;
    // A command taken from the queue while gathering publishes, handled next.
    let mut next: Option<Command> = None;
    loop {
        let command = match next.take() {
            Some(command) => command,
            None => match queue.recv().await {
                Some(command) => command,
                None => return,
            },
        };
        match command {
            Command::Subscribe(channel) => {
                // On failure the manager still resubscribes it once it reconnects.
                if let Err(err) =
                    redis_link::within("subscribing", connection.subscribe(&channel)).await
                {
                    tracing::warn!(%channel, error = %err, "subscribing to a room");
                }
                subscribers.deliver(&channel, Delivery::Subscribed);
            }
            Command::Unsubscribe(channel) => {
                if let Err(err) =
                    redis_link::within("unsubscribing", connection.unsubscribe(&channel)).await
                {
                    tracing::debug!(%channel, error = %err, "unsubscribing from a room");
                }
            }
            Command::Publish(channel, payload) => {
                let mut pipe = redis::pipe();
                pipe.publish(channel, payload).ignore();
                let mut n = 1;
                while n < MAX_PIPELINE {
                    match queue.try_recv() {
                        Ok(Command::Publish(channel, payload)) => {
                            pipe.publish(channel, payload).ignore();
                            n += 1;
                        }
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                publish(&mut connection, &pipe, n, &mut failures).await;
            }
        }
    }
}

async fn publish(
    connection: &mut ConnectionManager,
    pipe: &redis::Pipeline,
    n: usize,
    failures: &mut u64,
) {
    let sent: anyhow::Result<()> =
        redis_link::within("publishing", pipe.query_async(connection)).await;
    if let Err(err) = sent {
        *failures += 1;
        // One line per outage, not per message: receivers heal from the store.
        if failures.is_power_of_two() {
            tracing::warn!(messages = n, failures = *failures, error = %err, "publishing room messages to Redis failed");
        }
    } else {
        *failures = 0;
    }
}

impl Fanout for RedisFanout {
    fn node(&self) -> &str {
        &self.node
    }

    fn shared(&self) -> bool {
        true
    }

    fn publish(&self, topic: Topic<'_>, body: String) {
        let payload = format!("{}\n{body}", self.node);
        let _ = self
            .commands
            .send(Command::Publish(self.channel(topic), payload));
    }

    fn subscribe(&self, topic: Topic<'_>, subscriber: Subscriber) -> u64 {
        let channel = self.channel(topic);
        let id = self.subscribers.next_id.fetch_add(1, Ordering::Relaxed);
        let first = {
            let mut by_channel = self
                .subscribers
                .by_channel
                .lock()
                .expect("subscribers lock");
            let list = by_channel.entry(channel.clone()).or_default();
            list.push((id, subscriber.clone()));
            list.len() == 1
        };
        if first {
            let _ = self.commands.send(Command::Subscribe(channel));
        } else {
            subscriber(Delivery::Subscribed);
        }
        id
    }

    fn unsubscribe(&self, topic: Topic<'_>, id: u64) {
        let channel = self.channel(topic);
        let last = {
            let mut by_channel = self
                .subscribers
                .by_channel
                .lock()
                .expect("subscribers lock");
            match by_channel.get_mut(&channel) {
                Some(list) => {
                    list.retain(|(i, _)| *i != id);
                    let empty = list.is_empty();
                    if empty {
                        by_channel.remove(&channel);
                    }
                    empty
                }
                None => false,
            }
        };
        if last {
            let _ = self.commands.send(Command::Unsubscribe(channel));
        }
    }

    fn hold(&self, name: &str, ttl: Duration) -> BoxFuture<'static, anyhow::Result<bool>> {
        let mut connection = self.connection.clone();
        let (key, node, script) = (
            self.lease_key(name),
            self.node.to_string(),
            self.hold.clone(),
        );
        Box::pin(async move {
            let held: i64 = redis_link::within(
                "holding a lease",
                script
                    .key(key)
                    .arg(node)
                    .arg(ttl.as_millis() as u64)
                    .invoke_async(&mut connection),
            )
            .await?;
            Ok(held == 1)
        })
    }

    fn release(&self, name: &str) {
        let mut connection = self.connection.clone();
        let (key, node, script) = (
            self.lease_key(name),
            self.node.to_string(),
            self.release.clone(),
        );
        // A process shutting down may have no runtime left: the lease then expires on its own.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let released: anyhow::Result<i64> = redis_link::within(
                "releasing a lease",
                script.key(key).arg(node).invoke_async(&mut connection),
            )
            .await;
            if let Err(err) = released {
                tracing::debug!(error = %err, "releasing a lease (it expires on its own)");
            }
        });
    }
}
