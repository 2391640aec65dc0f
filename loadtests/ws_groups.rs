//! `ws-groups`: live groups over WebSockets. Setup creates `groups × members` guests, the groups
//! (first member hosts, the others join by code), and one socket per member that joins its
//! group; optionally `idle` more sockets that only answer pings. Sockets are spread over several
//! loopback source addresses (127.0.0.1, .2, …) so more than one address's ephemeral ports are
//! available.
//!
//! The measured load: in every group, one member after another sends an operation at `op_rate`
//! per second (adds of tracks the group does not have yet; every fourth operation a vote on an
//! earlier entry). Which tracks are added is `--adds`: popular tracks of every genre in a random
//! order per group (the default), or each member sticking to a genre of their own. Each
//! operation's `client_msg_id` carries its send time, so every member that
//! receives the resulting `event` records the delivery latency (send → receipt, all members,
//! the sender included). The group's first member also records the refresh latency: send → the
//! first `recommendations` frame whose `seq` covers the operation. With `--server-pid` the
//! server's resident memory is read from /proc before and after the sockets connect.

use std::{
    borrow::Cow,
    collections::{BTreeMap, VecDeque},
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use futures_util::{stream, SinkExt, StreamExt};
use hdrhistogram::Histogram;
use rand::{rngs::StdRng, seq::SliceRandom, RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::{
    net::TcpSocket,
    sync::{mpsc, watch},
};
use tokio_tungstenite::tungstenite::{protocol::WebSocketConfig, Message};

use crate::{
    catalog::popular_by_genre,
    report::{write_files, Percentiles},
    runner::RunOptions,
};

pub struct Options {
    pub groups: usize,
    pub members: usize,
    /// Operations per group per second.
    pub op_rate: f64,
    pub idle: usize,
    pub sources: u8,
    pub server_pid: Option<u32>,
    /// Other processes serving the same rooms; members are spread over them and `url`.
    pub also: Vec<String>,
    pub adds: Adds,
}

/// Which tracks members add.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Adds {
    /// Popular tracks of every genre in a random order per group, whoever adds them: every add
    /// can move the room's taste anywhere in the catalog.
    Random,
    /// Each member adds popular tracks of one genre of their own (the members of a group have
    /// different genres), as listeners who know what they like: the room's taste settles.
    OwnGenre,
}

/// Idle sockets opened per user: the server's default `realtime.sockets_per_user` (more are
/// refused with 429).
const SOCKETS_PER_IDLE_USER: usize = 8;
/// Setup requests and socket connections in flight at once.
const SETUP_CONCURRENCY: usize = 64;
/// Each socket's read buffer. tungstenite's default (128 KiB) is zero-filled before every read:
/// with thousands of sockets each reading a few hundred bytes at a time that was a fifth of
/// the load tool's CPU (and 1.3 GB for 10,000 sockets), CPU the server on the same machine did
/// not get. Longer frames are read in several pieces.
const READ_BUFFER: usize = 8 * 1024;
/// After the measured window, how long late deliveries may still arrive.
const DRAIN: Duration = Duration::from_secs(3);

#[derive(Serialize)]
pub struct WsReport {
    pub scenario: String,
    pub groups: usize,
    pub members: usize,
    pub sockets: usize,
    pub idle_sockets: usize,
    pub op_rate_per_group: f64,
    pub duration_s: f64,
    pub ops_sent: u64,
    pub acks: u64,
    pub errors: BTreeMap<String, u64>,
    pub deliveries: u64,
    pub delivery_ms: Percentiles,
    /// Delivery by the second of the measured window the operation was sent in: a stall shows
    /// as a few bad seconds, saturation as a climb.
    pub delivery_by_second: Vec<Percentiles>,
    pub refreshes: u64,
    pub refresh_ms: Percentiles,
    /// Bytes of every text frame the group sockets received, the warm-up and drain included.
    pub received_bytes: u64,
    /// Server resident memory: before any socket, with the group sockets, with the idle ones too.
    pub rss_kb: Option<[u64; 3]>,
    pub kb_per_group_socket: Option<f64>,
    pub kb_per_idle_socket: Option<f64>,
    pub notes: Vec<String>,
}

impl WsReport {
    pub fn write(&self, dir: &std::path::Path) -> anyhow::Result<()> {
        write_files(dir, &self.scenario, self, &self.markdown())
    }

    pub fn markdown(&self) -> String {
        let (d, r) = (&self.delivery_ms, &self.refresh_ms);
        let mut out = format!(
            "| groups × members | idle sockets | ops/s | ops | errors | deliveries | delivery p50 / p99 / max ms | refreshes | refresh p50 / p99 / max ms |\n\
             | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n\
             | {} × {} | {} | {:.0} | {} | {} | {} | {:.2} / {:.2} / {:.2} | {} | {:.1} / {:.1} / {:.1} |\n",
            self.groups,
            self.members,
            self.idle_sockets,
            self.op_rate_per_group * self.groups as f64,
            self.ops_sent,
            self.errors.values().sum::<u64>(),
            self.deliveries,
            d.p50,
            d.p99,
            d.max,
            self.refreshes,
            r.p50,
            r.p99,
            r.max,
        );
        if let Some([before, groups, idle]) = self.rss_kb {
            out.push_str(&format!(
                "\nServer RSS: {before} KB before sockets, {groups} KB with the {} group sockets ({:.1} KB each), {idle} KB with {} idle sockets more ({:.1} KB each).\n",
                self.sockets,
                self.kb_per_group_socket.unwrap_or(0.0),
                self.idle_sockets,
                self.kb_per_idle_socket.unwrap_or(0.0),
            ));
        }
        out.push_str(&format!(
            "\nFrames received by the group sockets: {:.1} MB ({:.1} KB per operation sent).\n",
            self.received_bytes as f64 / 1e6,
            self.received_bytes as f64 / 1e3 / self.ops_sent.max(1) as f64,
        ));
        if !self.errors.is_empty() {
            out.push_str(&format!("\nError frames by code: {:?}\n", self.errors));
        }
        if !self.delivery_by_second.is_empty() {
            let p99: Vec<String> = self
                .delivery_by_second
                .iter()
                .map(|p| format!("{:.0}", p.p99))
                .collect();
            out.push_str(&format!(
                "\nDelivery p99 ms by second of the window: {}\n",
                p99.join(" ")
            ));
        }
        for note in &self.notes {
            out.push_str(&format!("\n{note}\n"));
        }
        out
    }
}

struct Member {
    token: String,
}

struct GroupSetup {
    id: String,
    members: Vec<Member>,
}

/// What readers report to the aggregator.
enum Sample {
    /// Latency in µs, and the second of the window the operation was sent in.
    Delivery {
        us: u64,
        second: usize,
    },
    Refresh(u64),
    Ack,
    Error(String),
}

fn socket_address(url: &str) -> anyhow::Result<SocketAddr> {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .context("server URLs must be http://IP:PORT for ws-groups")
}

pub async fn run(url: &str, run: &RunOptions, options: &Options) -> anyhow::Result<WsReport> {
    let server = socket_address(url)?;
    let mut servers = vec![(url.to_string(), server)];
    for other in &options.also {
        servers.push((other.clone(), socket_address(other)?));
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(SETUP_CONCURRENCY)
        .build()?;
    let genres = genre_tracks(popular_by_genre(&client, url, 100).await?);
    if options.adds == Adds::OwnGenre && genres.len() < options.members {
        bail!(
            "--adds own-genre needs a genre per member: the catalog has {} genres with tracks, groups have {} members",
            genres.len(),
            options.members
        );
    }
    let mut tracks: Vec<String> = genres.iter().flatten().cloned().collect();
    tracks.sort_unstable();
    let started = Instant::now();
    eprintln!(
        "ws-groups: creating {} groups of {} members",
        options.groups, options.members
    );
    let urls: Vec<String> = servers.iter().map(|(url, _)| url.clone()).collect();
    let groups = create_groups(&client, &urls, options.groups, options.members).await?;
    eprintln!(
        "ws-groups: groups ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let rss_before = options.server_pid.map(rss_kb).transpose()?;

    let clock = Instant::now();
    let (samples_tx, samples_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    // Opened when the operations start, after every socket is connected: the warm-up is never
    // spent connecting (and a late start never fires a catch-up burst).
    let window = Arc::new(Window::default());
    let received = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let entries: Vec<Arc<Mutex<VecDeque<String>>>> =
        groups.iter().map(|_| Default::default()).collect();
    let mut senders: Vec<Vec<mpsc::UnboundedSender<String>>> = Vec::new();
    let connect_started = Instant::now();
    let jobs = groups
        .iter()
        .enumerate()
        .flat_map(|(g, group)| (0..group.members.len()).map(move |m| (g, m)))
        .map(|(g, m)| {
            let (client, groups) = (&client, &groups);
            let source = source_address(g * options.members + m, options.sources);
            let (url, server) = &servers[m % servers.len()];
            async move {
                let member = &groups[g].members[m];
                let socket = open_socket(client, url, *server, source, &member.token).await?;
                let socket = join(socket, &groups[g].id).await?;
                anyhow::Ok((g, m, socket))
            }
        });
    let connections: Vec<(usize, usize, GroupSocket)> = all_of(jobs, SETUP_CONCURRENCY).await?;
    eprintln!(
        "ws-groups: {} sockets joined in {:.1} s",
        connections.len(),
        connect_started.elapsed().as_secs_f64()
    );
    senders.resize_with(groups.len(), Vec::new);
    let mut ordered: Vec<(usize, usize, GroupSocket)> = connections;
    ordered.sort_by_key(|(g, m, _)| (*g, *m));
    for (g, m, socket) in ordered {
        let (tx, rx) = mpsc::unbounded_channel();
        senders[g].push(tx);
        let reader = Reader {
            samples: samples_tx.clone(),
            clock,
            window: Arc::clone(&window),
            received: Arc::clone(&received),
            measures_refresh: m == 0,
            entries: (m == 0).then(|| Arc::clone(&entries[g])),
        };
        tokio::spawn(serve_socket(socket, rx, reader, stop_rx.clone()));
    }
    let rss_groups = options.server_pid.map(rss_kb).transpose()?;

    if options.idle > 0 {
        connect_idle(&client, url, server, options, stop_rx.clone()).await?;
    }
    let rss_idle = options.server_pid.map(rss_kb).transpose()?;

    eprintln!(
        "ws-groups: {:.0} ops/s for {} s (+{} s warm-up)",
        options.op_rate * groups.len() as f64,
        run.duration.as_secs(),
        run.warmup.as_secs()
    );
    let ops_sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut drivers = Vec::new();
    let start = Instant::now();
    let end = start + run.warmup + run.duration;
    window.open(start + run.warmup, end);
    let mut rng = StdRng::seed_from_u64(11);
    for (g, group_senders) in senders.into_iter().enumerate() {
        let lists = match options.adds {
            Adds::Random => vec![tracks.clone()],
            Adds::OwnGenre => (0..group_senders.len())
                .map(|m| genres[own_genre(g, m, genres.len())].clone())
                .collect(),
        };
        let mut picks = Picks::new(lists);
        picks.shuffle(&mut rng);
        let offset = Duration::from_secs_f64(rng.random::<f64>() / options.op_rate);
        drivers.push(tokio::spawn(drive_group(Driver {
            senders: group_senders,
            picks,
            entries: Arc::clone(&entries[g]),
            clock,
            start: start + offset,
            end,
            period: Duration::from_secs_f64(1.0 / options.op_rate),
            sent: Arc::clone(&ops_sent),
            group: g,
        })));
    }
    drop(samples_tx);
    let aggregator = tokio::spawn(aggregate(samples_rx));
    for driver in drivers {
        driver.await?;
    }
    tokio::time::sleep(DRAIN).await;
    let _ = stop_tx.send(true);
    let tally = aggregator.await?;

    let sockets = groups.len() * options.members;
    let rss = match (rss_before, rss_groups, rss_idle) {
        (Some(a), Some(b), Some(c)) => Some([a, b, c]),
        _ => None,
    };
    let mut report = WsReport {
        scenario: "ws-groups".into(),
        groups: groups.len(),
        members: options.members,
        sockets,
        idle_sockets: options.idle,
        op_rate_per_group: options.op_rate,
        duration_s: run.duration.as_secs_f64(),
        ops_sent: ops_sent.load(std::sync::atomic::Ordering::Relaxed),
        acks: tally.acks,
        errors: tally.errors,
        deliveries: tally.delivery.len(),
        delivery_ms: Percentiles::of(&tally.delivery),
        delivery_by_second: tally
            .delivery_by_second
            .iter()
            .map(Percentiles::of)
            .collect(),
        refreshes: tally.refresh.len(),
        refresh_ms: Percentiles::of(&tally.refresh),
        received_bytes: received.load(std::sync::atomic::Ordering::Relaxed),
        rss_kb: rss,
        kb_per_group_socket: rss.map(|[a, b, _]| (b as f64 - a as f64) / sockets.max(1) as f64),
        kb_per_idle_socket: rss
            .filter(|_| options.idle > 0)
            .map(|[_, b, c]| (c as f64 - b as f64) / options.idle as f64),
        notes: Vec::new(),
    };
    report.notes.push(format!(
        "Sockets from {} loopback source addresses; operations: adds ({}), every fourth a vote. Delivery: send → each member's receipt of the event. Refresh: send → the first recommendations frame covering it (group's first member).",
        options.sources,
        match options.adds {
            Adds::Random => "popular tracks of every genre in a random order per group",
            Adds::OwnGenre => "each member from a genre of their own",
        }
    ));
    if servers.len() > 1 {
        report.notes.push(format!(
            "Members spread over {} processes (member m on process m mod {0}; group g set up through process g mod {0}).",
            servers.len()
        ));
    }
    Ok(report)
}

/// Track ids by genre, each track in the first genre that lists it (a track can top several), so
/// no two members with different genres add the same track.
fn genre_tracks(lists: Vec<Vec<Value>>) -> Vec<Vec<String>> {
    let mut seen = std::collections::HashSet::new();
    lists
        .into_iter()
        .map(|list| {
            list.iter()
                .filter_map(|t| t["id"].as_str())
                .filter(|id| seen.insert(id.to_string()))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|list| !list.is_empty())
        .collect()
}

/// The genre member `m` of group `g` adds from: different for every member of a group as long
/// as there are at least as many genres as members, and shifted from group to group.
fn own_genre(g: usize, m: usize, genres: usize) -> usize {
    (g + m) % genres
}

/// The tracks a group's members add, in order: one list the members take turns in, or one
/// list per member.
struct Picks {
    lists: Vec<Vec<String>>,
    next: Vec<usize>,
}

impl Picks {
    fn new(lists: Vec<Vec<String>>) -> Self {
        assert!(lists.iter().all(|l| !l.is_empty()), "empty track list");
        let next = vec![0; lists.len()];
        Self { lists, next }
    }

    fn shuffle(&mut self, rng: &mut StdRng) {
        for list in &mut self.lists {
            list.shuffle(rng);
        }
    }

    /// The next track member `m` adds; a list that runs out starts again.
    fn next_for(&mut self, m: usize) -> &str {
        let l = m % self.lists.len();
        let list = &self.lists[l];
        let track = &list[self.next[l] % list.len()];
        self.next[l] += 1;
        track
    }
}

/// The measured window: operations sent within it count.
#[derive(Default)]
struct Window {
    bounds: std::sync::OnceLock<(Instant, Instant)>,
}

impl Window {
    fn open(&self, start: Instant, end: Instant) {
        let _ = self.bounds.set((start, end));
    }

    /// The second of the window an operation sent then falls in, if it counts.
    fn second_of(&self, sent: Instant) -> Option<usize> {
        let &(start, end) = self.bounds.get()?;
        (sent >= start && sent < end).then(|| (sent - start).as_secs() as usize)
    }
}

type GroupSocket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Runs the jobs `limit` at a time; the first failure fails the whole setup.
async fn all_of<T>(
    jobs: impl Iterator<Item = impl std::future::Future<Output = anyhow::Result<T>>>,
    limit: usize,
) -> anyhow::Result<Vec<T>> {
    stream::iter(jobs)
        .buffer_unordered(limit)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

fn source_address(n: usize, sources: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        127,
        0,
        0,
        1 + (n % sources.max(1) as usize) as u8,
    ))
}

/// Group g is created and joined through server g mod the number of servers, as a load
/// balancer would spread the requests (so the process that loads a room first, and holds its
/// duties, differs from room to room).
async fn create_groups(
    client: &reqwest::Client,
    servers: &[String],
    groups: usize,
    members: usize,
) -> anyhow::Result<Vec<GroupSetup>> {
    let jobs = (0..groups).map(|g| async move {
        let url = servers[g % servers.len()].as_str();
        let mut people = Vec::with_capacity(members);
        for m in 0..members {
            people.push(create_user(client, url, &format!("g{g}-m{m}")).await?);
        }
        let created: Value = client
            .post(format!("{url}/api/v1/groups"))
            .bearer_auth(&people[0].token)
            .json(&json!({"name": format!("load group {g}")}))
            .send()
            .await?
            .error_for_status()
            .context("creating a group (is the rate limit off? CHORUS_RATE_LIMIT=false)")?
            .json()
            .await?;
        let code = created["join_code"].as_str().context("join code")?;
        for member in &people[1..] {
            client
                .post(format!("{url}/api/v1/groups/join"))
                .bearer_auth(&member.token)
                .json(&json!({ "join_code": code }))
                .send()
                .await?
                .error_for_status()
                .context("joining a group")?;
        }
        anyhow::Ok(GroupSetup {
            id: created["group_id"]
                .as_str()
                .context("group id")?
                .to_string(),
            members: people,
        })
    });
    all_of(jobs, SETUP_CONCURRENCY / 4).await
}

async fn create_user(client: &reqwest::Client, url: &str, name: &str) -> anyhow::Result<Member> {
    let created: Value = client
        .post(format!("{url}/api/v1/users"))
        .json(&json!({ "display_name": name }))
        .send()
        .await?
        .error_for_status()
        .context("creating a user (is the rate limit off? CHORUS_RATE_LIMIT=false)")?
        .json()
        .await?;
    Ok(Member {
        token: created["token"].as_str().context("token")?.to_string(),
    })
}

/// A ticket, a TCP connection from `source`, the WebSocket handshake and the `welcome` frame.
async fn open_socket(
    client: &reqwest::Client,
    url: &str,
    server: SocketAddr,
    source: IpAddr,
    token: &str,
) -> anyhow::Result<GroupSocket> {
    let ticket: Value = client
        .post(format!("{url}/api/v1/ws-ticket"))
        .bearer_auth(token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let ticket = ticket["ticket"].as_str().context("ticket")?;
    let tcp = TcpSocket::new_v4()?;
    tcp.bind(SocketAddr::new(source, 0))
        .with_context(|| format!("binding {source} (is it a loopback address?)"))?;
    let stream = tcp.connect(server).await.context("connecting")?;
    stream.set_nodelay(true)?;
    let ws_url = format!("ws://{server}/api/v1/ws?ticket={ticket}");
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    let (mut socket, _) =
        tokio_tungstenite::client_async_with_config(ws_url, stream, Some(config)).await?;
    let welcome = next_json(&mut socket).await?;
    if welcome["type"] != "welcome" {
        bail!("expected welcome, got {welcome}");
    }
    Ok(socket)
}

async fn join(mut socket: GroupSocket, group_id: &str) -> anyhow::Result<GroupSocket> {
    socket
        .send(Message::text(
            json!({"type": "join", "group_id": group_id, "client_msg_id": "join"}).to_string(),
        ))
        .await?;
    loop {
        let frame = next_json(&mut socket).await?;
        match frame["type"].as_str() {
            Some("ack") if frame["client_msg_id"] == "join" => return Ok(socket),
            Some("error") => bail!("join failed: {frame}"),
            _ => {}
        }
    }
}

async fn next_json(socket: &mut GroupSocket) -> anyhow::Result<Value> {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), socket.next()).await {
            Err(_) => bail!("no frame within 30 s"),
            Ok(Some(Ok(Message::Text(text)))) => return Ok(serde_json::from_str(text.as_str())?),
            Ok(Some(Ok(Message::Close(frame)))) => bail!("socket closed: {frame:?}"),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => return Err(e.into()),
            Ok(None) => bail!("socket ended"),
        }
    }
}

/// Idle sockets: connected and answering pings, nothing else. Several sockets share a user (as
/// many as the server allows one user), so setup stays short.
async fn connect_idle(
    client: &reqwest::Client,
    url: &str,
    server: SocketAddr,
    options: &Options,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let users = options.idle.div_ceil(SOCKETS_PER_IDLE_USER);
    let names: Vec<String> = (0..users).map(|n| format!("idle-{n}")).collect();
    let owners = all_of(
        names.iter().map(|name| create_user(client, url, name)),
        SETUP_CONCURRENCY,
    )
    .await?;
    let started = Instant::now();
    let jobs = (0..options.idle).map(|i| {
        let owner = &owners[i % owners.len()];
        let source = source_address(i + 7, options.sources);
        open_socket(client, url, server, source, &owner.token)
    });
    let sockets: Vec<GroupSocket> = all_of(jobs, SETUP_CONCURRENCY).await?;
    eprintln!(
        "ws-groups: {} idle sockets open in {:.1} s",
        sockets.len(),
        started.elapsed().as_secs_f64()
    );
    for mut socket in sockets {
        let mut stop = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.changed() => return,
                    frame = socket.next() => if !matches!(frame, Some(Ok(_))) { return },
                }
            }
        });
    }
    // Let the server settle (allocations for the new sockets, a heartbeat round).
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(())
}

/// What the measuring reads of a server frame. Everything else (a `recommendations` frame is
/// mostly its list) is skipped without being built: at a few thousand frames a second, parsing
/// each into a `Value` made the load tool use more CPU than the server it measured.
#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    seq: Option<i64>,
    #[serde(borrow)]
    event: Option<FrameEvent<'a>>,
    #[serde(borrow)]
    code: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct FrameEvent<'a> {
    #[serde(borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    client_msg_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    payload: Option<FramePayload<'a>>,
}

#[derive(Deserialize)]
struct FramePayload<'a> {
    #[serde(borrow)]
    entry_id: Option<Cow<'a, str>>,
}

struct Reader {
    samples: mpsc::UnboundedSender<Sample>,
    clock: Instant,
    window: Arc<Window>,
    /// Bytes received, over all sockets.
    received: Arc<std::sync::atomic::AtomicU64>,
    measures_refresh: bool,
    /// The group's entry ids, kept by its first member for the driver's votes.
    entries: Option<Arc<Mutex<VecDeque<String>>>>,
}

/// Reads a member's socket (recording latencies) and writes the operations its driver gives it.
async fn serve_socket(
    socket: GroupSocket,
    mut outgoing: mpsc::UnboundedReceiver<String>,
    reader: Reader,
    mut stop: watch::Receiver<bool>,
) {
    let (mut sink, mut frames) = socket.split();
    // Operations waiting for the recommendations that cover them: (seq, send time).
    let mut awaiting_refresh: VecDeque<(i64, Instant)> = VecDeque::new();
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            text = outgoing.recv() => match text {
                Some(text) => if let Err(err) = sink.send(Message::text(text)).await {
                    let _ = reader.samples.send(Sample::Error(format!("send_error: {err}")));
                    return;
                },
                None => return,
            },
            frame = frames.next() => {
                // Why a socket ended is counted as its error (the server's close code, the
                // transport's error), so an early end can be traced.
                let ended = match frame {
                    Some(Ok(Message::Text(text))) => Ok(text),
                    Some(Ok(Message::Close(close))) => Err(match close {
                        Some(close) => format!("closed_{}", u16::from(close.code)),
                        None => "closed".to_string(),
                    }),
                    Some(Ok(_)) => continue,
                    Some(Err(err)) => Err(format!("socket_error: {err}")),
                    None => Err("socket_ended".to_string()),
                };
                let text = match ended {
                    Ok(text) => text,
                    Err(why) => {
                        let _ = reader.samples.send(Sample::Error(why));
                        return;
                    }
                };
                let received = Instant::now();
                reader
                    .received
                    .fetch_add(text.len() as u64, std::sync::atomic::Ordering::Relaxed);
                if reader.skips(text.as_str()) {
                    continue;
                }
                let Ok(frame) = serde_json::from_str::<Frame>(text.as_str()) else { continue };
                reader.observe(&frame, received, &mut awaiting_refresh);
            }
        }
    }
}

/// How every `recommendations` frame starts (the server writes the frame's tag first).
const RECOMMENDATIONS_FRAME: &str = r#"{"type":"recommendations""#;

impl Reader {
    /// Whether a frame is dropped unparsed: a `recommendations` frame holds nothing for a
    /// member who does not measure refresh (four of five), and such frames are most of the
    /// bytes (with the smaller read buffers, the load tool uses 16-19% less CPU at 600 x 5).
    fn skips(&self, text: &str) -> bool {
        !self.measures_refresh && text.starts_with(RECOMMENDATIONS_FRAME)
    }

    fn observe(
        &self,
        frame: &Frame,
        received: Instant,
        awaiting_refresh: &mut VecDeque<(i64, Instant)>,
    ) {
        match frame.kind.as_ref() {
            "event" => {
                let Some(event) = &frame.event else {
                    return;
                };
                if let (Some(entries), Some("track_added"), Some(id)) = (
                    &self.entries,
                    event.kind.as_deref(),
                    event.payload.as_ref().and_then(|p| p.entry_id.as_deref()),
                ) {
                    entries.lock().expect("entries").push_back(id.to_string());
                }
                let Some(sent) = event
                    .client_msg_id
                    .as_deref()
                    .and_then(|id| self.sent_at(id))
                else {
                    return;
                };
                if let Some(second) = self.window.second_of(sent) {
                    let _ = self.samples.send(Sample::Delivery {
                        us: micros(received - sent),
                        second,
                    });
                    if self.measures_refresh {
                        if let Some(seq) = frame.seq {
                            awaiting_refresh.push_back((seq, sent));
                        }
                    }
                }
            }
            "recommendations" => {
                let covered = frame.seq.unwrap_or(0);
                while let Some(&(seq, sent)) = awaiting_refresh.front() {
                    if seq > covered {
                        break;
                    }
                    awaiting_refresh.pop_front();
                    let _ = self.samples.send(Sample::Refresh(micros(received - sent)));
                }
            }
            "ack" => {
                let _ = self.samples.send(Sample::Ack);
            }
            "error" => {
                let code = frame.code.as_deref().unwrap_or("?").to_string();
                let _ = self.samples.send(Sample::Error(code));
            }
            _ => {}
        }
    }

    /// Operation ids are `op-<group>-<micros since the run's clock>`.
    fn sent_at(&self, client_msg_id: &str) -> Option<Instant> {
        let micros: u64 = client_msg_id.rsplit('-').next()?.parse().ok()?;
        Some(self.clock + Duration::from_micros(micros))
    }
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u64::MAX as u128) as u64
}

struct Driver {
    senders: Vec<mpsc::UnboundedSender<String>>,
    picks: Picks,
    entries: Arc<Mutex<VecDeque<String>>>,
    /// Operation ids count from here.
    clock: Instant,
    /// This group's first operation.
    start: Instant,
    end: Instant,
    period: Duration,
    sent: Arc<std::sync::atomic::AtomicU64>,
    group: usize,
}

/// One group's operations at a fixed rate until the measured window ends; members take turns.
async fn drive_group(mut driver: Driver) {
    let mut next = driver.start;
    let mut n = 0usize;
    while next < driver.end {
        tokio::time::sleep_until(next.into()).await;
        let sent = Instant::now();
        let id = format!("op-{}-{}", driver.group, micros(sent - driver.clock));
        let vote_on = (n % 4 == 3)
            .then(|| driver.entries.lock().expect("entries").pop_front())
            .flatten();
        let m = n % driver.senders.len();
        let frame = match vote_on {
            Some(entry) => {
                json!({"type": "vote", "entry_id": entry, "value": 1, "client_msg_id": id})
            }
            None => {
                json!({"type": "add_track", "track_id": driver.picks.next_for(m), "client_msg_id": id})
            }
        };
        let member = &driver.senders[m];
        if member.send(frame.to_string()).is_ok() {
            driver
                .sent
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        n += 1;
        next += driver.period;
    }
}

struct Tally {
    delivery: Histogram<u64>,
    delivery_by_second: Vec<Histogram<u64>>,
    refresh: Histogram<u64>,
    acks: u64,
    errors: BTreeMap<String, u64>,
}

async fn aggregate(mut samples: mpsc::UnboundedReceiver<Sample>) -> Tally {
    let histogram = || Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds");
    let mut tally = Tally {
        delivery: histogram(),
        delivery_by_second: Vec::new(),
        refresh: histogram(),
        acks: 0,
        errors: BTreeMap::new(),
    };
    while let Some(sample) = samples.recv().await {
        match sample {
            Sample::Delivery { us, second } => {
                tally.delivery.saturating_record(us.max(1));
                if tally.delivery_by_second.len() <= second {
                    tally.delivery_by_second.resize_with(second + 1, histogram);
                }
                tally.delivery_by_second[second].saturating_record(us.max(1));
            }
            Sample::Refresh(us) => tally.refresh.saturating_record(us.max(1)),
            Sample::Ack => tally.acks += 1,
            Sample::Error(code) => *tally.errors.entry(code).or_default() += 1,
        }
    }
    tally
}

/// Resident set size of a process, in KB (Linux).
fn rss_kb(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status (--server-pid)"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS in /proc/PID/status")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_give_what_the_measuring_reads_and_skip_the_rest() {
        let event: Frame = serde_json::from_str(
            r#"{"type":"event","seq":7,"event":{"seq":7,"kind":"track_added","actor":"u_1",
                "client_msg_id":"op-3-1500","ts":1,"payload":{"entry_id":"e_\u0041b","track":{"id":"t"}}}}"#,
        )
        .unwrap();
        assert_eq!(event.kind, "event");
        assert_eq!(event.seq, Some(7));
        let body = event.event.unwrap();
        assert_eq!(body.kind.as_deref(), Some("track_added"));
        assert_eq!(body.client_msg_id.as_deref(), Some("op-3-1500"));
        // An escaped string is decoded, not borrowed.
        assert_eq!(body.payload.unwrap().entry_id.as_deref(), Some("e_Ab"));

        let list: Frame = serde_json::from_str(
            r#"{"type":"recommendations","seq":12,"recommendations":{"items":[{"track":{"id":"t","tags":["a","b"]},
                "fit":[{"user_id":"u","probability":0.5}],"seq":3}],"harmony":{"least":0.4}}}"#,
        )
        .unwrap();
        assert_eq!(
            (list.kind.as_ref(), list.seq),
            ("recommendations", Some(12))
        );
        assert!(list.event.is_none());

        let error: Frame = serde_json::from_str(
            r#"{"type":"error","code":"rate_limited","message":"slow down","client_msg_id":null}"#,
        )
        .unwrap();
        assert_eq!(error.code.as_deref(), Some("rate_limited"));
    }

    #[test]
    fn only_the_member_who_measures_refresh_reads_recommendations() {
        let reader = |measures_refresh| Reader {
            samples: mpsc::unbounded_channel().0,
            clock: Instant::now(),
            window: Arc::default(),
            received: Arc::default(),
            measures_refresh,
            entries: None,
        };
        let list = r#"{"type":"recommendations","seq":12,"recommendations":{"items":[]}}"#;
        let event = r#"{"type":"event","seq":7,"event":{"kind":"track_added"}}"#;
        assert!(reader(false).skips(list));
        assert!(!reader(true).skips(list));
        assert!(!reader(false).skips(event));
        // The server's frames carry their tag first, and a neighbouring tag is not mistaken.
        let updating = serde_json::to_string(
            &chorus::groups::protocol::ServerFrame::RecommendationsUpdating { seq: 3 },
        )
        .unwrap();
        assert!(updating.starts_with(r#"{"type":"recommendations_updating""#));
        assert!(!reader(false).skips(&updating));
    }

    #[test]
    fn members_with_own_genres_add_only_from_them_and_never_the_same_track() {
        let track = |id: &str| json!({ "id": id });
        // "b" tops two genres; the second genre keeps only what the first did not list.
        let genres = genre_tracks(vec![
            vec![track("a"), track("b")],
            vec![track("b"), track("c")],
            vec![track("b")],
            vec![track("d")],
        ]);
        assert_eq!(genres, [vec!["a", "b"], vec!["c"], vec!["d"]]);
        for g in 0..5 {
            let mine: Vec<usize> = (0..3).map(|m| own_genre(g, m, genres.len())).collect();
            let mut distinct = mine.clone();
            distinct.sort_unstable();
            distinct.dedup();
            assert_eq!(distinct.len(), 3, "group {g}: {mine:?}");
        }

        let mut picks = Picks::new(vec![vec!["a".into(), "b".into()], vec!["c".into()]]);
        let added: Vec<String> = [0, 1, 0, 1, 0]
            .iter()
            .map(|&m| picks.next_for(m).to_string())
            .collect();
        assert_eq!(added, ["a", "c", "b", "c", "a"]);
        // One shared list: members take turns in it.
        let mut picks = Picks::new(vec![vec!["a".into(), "b".into(), "c".into()]]);
        let added: Vec<String> = [0, 1, 2, 3]
            .iter()
            .map(|&m| picks.next_for(m).to_string())
            .collect();
        assert_eq!(added, ["a", "b", "c", "a"]);
    }

    #[test]
    fn the_window_counts_only_once_open_and_by_second() {
        let window = Window::default();
        let t0 = Instant::now();
        assert_eq!(window.second_of(t0), None);
        window.open(t0, t0 + Duration::from_secs(20));
        assert_eq!(window.second_of(t0), Some(0));
        assert_eq!(window.second_of(t0 + Duration::from_millis(2_500)), Some(2));
        assert_eq!(window.second_of(t0 + Duration::from_secs(20)), None);
    }
}
