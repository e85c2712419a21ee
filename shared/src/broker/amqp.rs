//! The lapin implementation of [`Transport`]: two supervised connections per process, one
//! that publishes and one that consumes (started by the first subscription).
//!
//! RabbitMQ's advice: under a memory or disk alarm the broker stops reading from connections
//! that publish ("blocked"); on a connection that also consumed, acknowledgements and
//! deliveries would stop with them. Here a blocked publishing connection leaves consuming
//! and acking untouched, and it is reported ([`Transport::blocked`]) and logged once.
//!
//! A supervisor task owns each connection. It connects (trying each URL in turn), declares
//! the topology of its [`Role`], publishes the live session on a watch channel, and waits for
//! the connection to fail; then it backs off (capped, jittered) and starts again. Publishers
//! and subscriptions only ever read the watch channels, so there is one owner of each
//! connection's state.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::{FieldTable, ShortString};
use lapin::uri::{AMQPScheme, SASLMechanism};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use rand::Rng;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::config::{parse_url, redact_url};
use super::subscription::Acker;
use super::{
    BrokerConfig, BrokerError, Incoming, Outgoing, QueueRole, Role, Route, Subscription, Topology,
    Transport,
};
use crate::error_chain;
use crate::names::PoolName;

/// Backoff between connection attempts: doubles from the first value up to the cap.
const BACKOFF_FIRST: Duration = Duration::from_millis(200);
const BACKOFF_CAP: Duration = Duration::from_secs(15);
/// A connection that lived this long resets the backoff.
const STABLE_CONNECTION: Duration = Duration::from_secs(30);
/// AMQP heartbeat asked for when the URL does not say, so a dead peer is noticed quickly.
const DEFAULT_HEARTBEAT_SECS: u16 = 10;
/// AMQP frame size asked for when the URL does not say. lapin keeps send and receive buffers
/// of 32 frames each, so RabbitMQ's default of 128 KiB costs 8 MiB of memory per connection;
/// our messages are small (a larger one is split into more frames), and RabbitMQ's minimum,
/// 4 KiB, keeps that at 256 KiB (measured: 16 KiB frames → 4 KiB took 0.6 MB off an idle
/// manager and changed no throughput figure).
const DEFAULT_FRAME_MAX: u32 = 4 * 1024;
/// How often the supervisor double-checks the connection status.
const STATUS_POLL: Duration = Duration::from_millis(500);

/// A reconnecting AMQP client. Cheap to clone; every clone shares the connection.
#[derive(Clone)]
pub struct AmqpBroker {
    shared: Arc<Shared>,
}

struct Shared {
    config: BrokerConfig,
    role: Role,
    topology: Topology,
    /// The AMQP `user_id` stamped on published messages (the broker checks it is our login).
    user_id: Option<String>,
    /// The publishing connection.
    publishing: watch::Receiver<Link>,
    /// The consuming connection, once something subscribed.
    consuming: OnceLock<watch::Receiver<Link>>,
    shutdown: CancellationToken,
}

/// What a connection is for (its name in the broker's management UI says it too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Publish,
    Consume,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Publish => "publish",
            Purpose::Consume => "consume",
        }
    }
}

#[derive(Clone)]
enum Link {
    Down,
    Up(Arc<Session>),
    Closed,
}

/// One live connection.
struct Session {
    generation: u64,
    connection: Connection,
    /// The channel in confirm mode that publishes; replaced if the broker closes it.
    publisher: Mutex<Option<Channel>>,
    /// Why the broker blocks this connection (`connection.blocked`), while it does.
    blocked: Mutex<Option<String>>,
}

impl Session {
    fn blocked(&self) -> Option<String> {
        self.blocked
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn set_blocked(&self, reason: Option<String>) {
        *self
            .blocked
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = reason;
    }
}

/// The live session of `link` newer than `generation`, waiting for one.
async fn session_after(
    link: &watch::Receiver<Link>,
    generation: u64,
    shutdown: &CancellationToken,
) -> Result<Arc<Session>, BrokerError> {
    let mut link = link.clone();
    loop {
        match &*link.borrow_and_update() {
            Link::Up(session) if session.generation > generation => return Ok(session.clone()),
            Link::Closed => return Err(BrokerError::Closed),
            Link::Up(_) | Link::Down => {}
        }
        tokio::select! {
            changed = link.changed() => {
                if changed.is_err() {
                    return Err(BrokerError::Closed);
                }
            }
            () = shutdown.cancelled() => return Err(BrokerError::Closed),
        }
    }
}

fn link_session(link: &watch::Receiver<Link>) -> Option<Arc<Session>> {
    match &*link.borrow() {
        Link::Up(session) if session.connection.status().connected() => Some(session.clone()),
        _ => None,
    }
}

impl AmqpBroker {
    /// Checks `config` and starts connecting in the background. The client stops when
    /// `shutdown` is cancelled.
    pub fn start(
        config: BrokerConfig,
        role: Role,
        shutdown: CancellationToken,
    ) -> Result<Self, BrokerError> {
        config.validate()?;
        let topology = Topology::new(config.namespace.clone(), config.queue_type);
        let user_id = publishing_user(&config, &role)?;
        let publishing = Supervisor::spawn(&config, &role, &topology, Purpose::Publish, &shutdown);
        Ok(AmqpBroker {
            shared: Arc::new(Shared {
                config,
                role,
                topology,
                user_id,
                publishing,
                consuming: OnceLock::new(),
                shutdown,
            }),
        })
    }

    /// The consuming connection's link, started on first use.
    fn consuming(&self) -> &watch::Receiver<Link> {
        let shared = &self.shared;
        shared.consuming.get_or_init(|| {
            Supervisor::spawn(
                &shared.config,
                &shared.role,
                &shared.topology,
                Purpose::Consume,
                &shared.shutdown,
            )
        })
    }

    /// Connects once, declares the topology of `role` and disconnects: checks that the
    /// settings work (`--check`, tests) and says why not.
    pub async fn probe(config: BrokerConfig, role: Role) -> Result<(), BrokerError> {
        config.validate()?;
        let (link, _) = watch::channel(Link::Down);
        let supervisor = Supervisor {
            topology: Topology::new(config.namespace.clone(), config.queue_type),
            config,
            role,
            purpose: Purpose::Publish,
            link,
            shutdown: CancellationToken::new(),
        };
        let connection = supervisor.connect_any().await?;
        let _ = connection.close(200, ShortString::from("probe done")).await;
        Ok(())
    }

    pub fn topology(&self) -> &Topology {
        &self.shared.topology
    }

    /// Waits until connected (both connections, once something subscribed), for at most
    /// `timeout`.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), BrokerError> {
        let both = async {
            session_after(&self.shared.publishing, 0, &self.shared.shutdown).await?;
            if let Some(consuming) = self.shared.consuming.get() {
                session_after(consuming, 0, &self.shared.shutdown).await?;
            }
            Ok(())
        };
        tokio::time::timeout(timeout, both)
            .await
            .map_err(|_| BrokerError::NotConnected(timeout))?
    }

    /// Waits until the client has shut down (its `shutdown` was cancelled) and closed its
    /// connections.
    pub async fn closed(&self) {
        let links = [Some(&self.shared.publishing), self.shared.consuming.get()];
        for link in links.into_iter().flatten() {
            let mut link = link.clone();
            let _ = link.wait_for(|link| matches!(link, Link::Closed)).await;
        }
    }

    /// The current publishing session, waiting for one if the broker is away.
    async fn session(&self) -> Result<Arc<Session>, BrokerError> {
        session_after(&self.shared.publishing, 0, &self.shared.shutdown).await
    }

    fn properties(&self, message: &Outgoing) -> BasicProperties {
        let timestamp = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
        let mut properties = BasicProperties::default()
            .with_content_type(crate::wire::CONTENT_TYPE.into())
            .with_delivery_mode(2)
            .with_message_id(message.message_id.to_string().into())
            .with_timestamp(timestamp)
            .with_type(message.kind.into())
            .with_app_id("tunasync".into());
        if let Some(user_id) = &self.shared.user_id {
            properties = properties.with_user_id(user_id.as_str().into());
        }
        if let Some(expiration) = message.expiration {
            properties =
                properties.with_expiration(expiration.as_millis().max(1).to_string().into());
        }
        properties
    }

    async fn publish_once(&self, message: &Outgoing) -> Result<(), BrokerError> {
        let session = self.session().await?;
        let channel = session.publisher().await?;
        let (exchange, routing_key) = match &message.route {
            Route::Event { routing_key } => {
                (self.shared.topology.events_exchange(), routing_key.clone())
            }
            Route::Command { worker } => (self.shared.topology.cmd_exchange(), worker.to_string()),
            Route::Pool { pool } => (self.shared.topology.pool_exchange(), pool.to_string()),
        };
        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let confirm = channel
            .basic_publish(
                exchange.as_str().into(),
                routing_key.as_str().into(),
                options,
                &message.payload,
                self.properties(message),
            )
            .await
            .map_err(BrokerError::amqp("basic.publish"))?
            .await
            .map_err(BrokerError::amqp("publisher confirm"))?;
        match confirm {
            Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
            Confirmation::Ack(Some(returned)) => {
                // One short line (lapin's own dump of the message is filtered out: see the
                // daemons' log filter), and the caller says what it means.
                info!(
                    kind = message.route.kind(),
                    exchange = %exchange,
                    routing_key = %routing_key,
                    reply = %returned.reply_text,
                    "the broker returned a message no queue takes"
                );
                Err(BrokerError::Unroutable)
            }
            Confirmation::Nack(_) => {
                // The broker's channel may hold a queue's old leader (a quorum queue whose
                // node died): the next publish takes a new channel.
                session.forget_publisher(&channel);
                Err(BrokerError::Nacked)
            }
        }
    }
}

impl Transport for AmqpBroker {
    async fn publish(&self, message: Outgoing) -> Result<(), BrokerError> {
        self.publish_once(&message).await
    }

    async fn subscribe(
        &self,
        queue: QueueRole,
        prefetch: u16,
    ) -> Result<Subscription, BrokerError> {
        let (sender, receiver) = mpsc::channel(usize::from(prefetch.max(1)));
        let consumer = ConsumerLoop {
            link: self.consuming().clone(),
            shutdown: self.shared.shutdown.clone(),
            queue: self.shared.topology.queue_name(&queue),
            prefetch,
            sender,
        };
        tokio::spawn(consumer.run());
        Ok(Subscription::new(receiver))
    }

    async fn declare_pool(&self, pool: &PoolName) -> Result<(), BrokerError> {
        let session = self.session().await?;
        self.shared
            .topology
            .declare_pool(&session.connection, pool)
            .await
    }

    fn is_connected(&self) -> bool {
        link_session(&self.shared.publishing).is_some()
            && self
                .shared
                .consuming
                .get()
                .is_none_or(|consuming| link_session(consuming).is_some())
    }

    fn blocked(&self) -> Option<String> {
        link_session(&self.shared.publishing).and_then(|session| session.blocked())
    }
}

impl Session {
    /// Drops `channel` as the publishing channel (closing it), if it still is.
    fn forget_publisher(&self, channel: &Channel) {
        let forgotten = self.publisher.lock().ok().and_then(|mut guard| {
            guard
                .as_ref()
                .is_some_and(|current| current.id() == channel.id())
                .then(|| guard.take())
                .flatten()
        });
        if let Some(channel) = forgotten {
            tokio::spawn(async move {
                let _ = channel
                    .close(200, ShortString::from("after a negative confirm"))
                    .await;
            });
        }
    }

    /// The publishing channel, opened (in confirm mode) if there is none or it was closed.
    async fn publisher(&self) -> Result<Channel, BrokerError> {
        if let Ok(guard) = self.publisher.lock()
            && let Some(channel) = guard.as_ref()
            && channel.status().connected()
        {
            return Ok(channel.clone());
        }
        let channel = self
            .connection
            .create_channel()
            .await
            .map_err(BrokerError::amqp("channel.open"))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(BrokerError::amqp("confirm.select"))?;
        if let Ok(mut guard) = self.publisher.lock() {
            *guard = Some(channel.clone());
        }
        Ok(channel)
    }
}

/// The AMQP user our messages carry: the URL's user, or with EXTERNAL the certificate's
/// subject, which by convention is the worker id.
fn publishing_user(config: &BrokerConfig, role: &Role) -> Result<Option<String>, BrokerError> {
    let uri = parse_url(&config.urls[0])?;
    if uri.query.auth_mechanism == Some(SASLMechanism::External) {
        return Ok(match role {
            Role::Worker(worker) => Some(worker.to_string()),
            Role::Manager | Role::Client => None,
        });
    }
    Ok(Some(uri.authority.userinfo.username))
}

/// Owns a connection: connect, declare, wait for failure, back off, again.
struct Supervisor {
    config: BrokerConfig,
    role: Role,
    purpose: Purpose,
    topology: Topology,
    link: watch::Sender<Link>,
    shutdown: CancellationToken,
}

impl Supervisor {
    /// Starts a supervisor for a connection for `purpose`; the link it keeps up to date.
    fn spawn(
        config: &BrokerConfig,
        role: &Role,
        topology: &Topology,
        purpose: Purpose,
        shutdown: &CancellationToken,
    ) -> watch::Receiver<Link> {
        let (link, receiver) = watch::channel(Link::Down);
        let supervisor = Supervisor {
            config: config.clone(),
            role: role.clone(),
            purpose,
            topology: topology.clone(),
            link,
            shutdown: shutdown.clone(),
        };
        tokio::spawn(supervisor.run());
        receiver
    }

    async fn run(self) {
        let mut failures: u32 = 0;
        let mut generation = 0;
        while !self.shutdown.is_cancelled() {
            match self.connect_any().await {
                Ok(connection) => {
                    generation += 1;
                    let connected_at = tokio::time::Instant::now();
                    let session = Arc::new(Session {
                        generation,
                        connection,
                        publisher: Mutex::new(None),
                        blocked: Mutex::new(None),
                    });
                    self.link.send_replace(Link::Up(session.clone()));
                    self.wait_for_failure(&session).await;
                    self.link.send_replace(Link::Down);
                    if self.shutdown.is_cancelled() {
                        let _ = session
                            .connection
                            .close(200, ShortString::from("shutting down"))
                            .await;
                        break;
                    }
                    warn!(
                        generation,
                        purpose = self.purpose.as_str(),
                        "lost the broker connection; reconnecting"
                    );
                    if connected_at.elapsed() >= STABLE_CONNECTION {
                        failures = 0;
                    }
                }
                Err(err) => {
                    warn!(error = %error_chain(&err), attempt = failures + 1, purpose = self.purpose.as_str(), "cannot reach the broker");
                }
            }
            let delay = backoff(failures);
            failures = failures.saturating_add(1);
            debug!(?delay, "waiting before reconnecting");
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.shutdown.cancelled() => break,
            }
        }
        self.link.send_replace(Link::Closed);
    }

    async fn connect_any(&self) -> Result<Connection, BrokerError> {
        let mut last_error = None;
        for url in &self.config.urls {
            match self.connect(url).await {
                Ok(connection) => return Ok(connection),
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.unwrap_or(BrokerError::Config(super::ConfigError::NoUrl)))
    }

    async fn connect(&self, url: &str) -> Result<Connection, BrokerError> {
        let mut uri = parse_url(url)?;
        if uri.query.heartbeat.is_none() {
            uri.query.heartbeat = Some(DEFAULT_HEARTBEAT_SECS);
        }
        if uri.query.frame_max.is_none() {
            uri.query.frame_max = Some(DEFAULT_FRAME_MAX);
        }
        let tls = if uri.scheme == AMQPScheme::AMQPS {
            self.tls_config()?
        } else {
            OwnedTLSConfig::default()
        };
        let name = match &self.role {
            Role::Manager => "tunasync manager".to_owned(),
            Role::Worker(worker) => format!("tunasync worker {worker}"),
            Role::Client => "tunasync client".to_owned(),
        };
        let name = format!("{name} ({})", self.purpose.as_str());
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        let runtime = lapin::runtime::default_runtime().map_err(|source| BrokerError::Connect {
            url: redact_url(url),
            source,
        })?;
        let connection = Connection::connect_uri_with_config(uri, properties, tls, runtime)
            .await
            .map_err(|source| BrokerError::Connect {
                url: redact_url(url),
                source,
            })?;
        if let Err(err) = self.topology.declare(&connection, &self.role).await {
            let _ = connection
                .close(200, ShortString::from("topology declaration failed"))
                .await;
            return Err(err);
        }
        info!(url = %redact_url(url), purpose = self.purpose.as_str(), "connected to the broker");
        Ok(connection)
    }

    fn tls_config(&self) -> Result<OwnedTLSConfig, BrokerError> {
        let read = |what: &'static str, path: &std::path::Path| {
            std::fs::read(path).map_err(|source| BrokerError::ReadFile {
                what,
                path: path.to_owned(),
                source,
            })
        };
        let cert_chain = match &self.config.ca_cert {
            Some(path) => Some(String::from_utf8_lossy(&read("ca_cert", path)?).into_owned()),
            None => None,
        };
        let identity = match (&self.config.client_cert, &self.config.client_key) {
            (Some(cert), Some(key)) => Some(OwnedIdentity::PKCS8 {
                pem: read("client_cert", cert)?,
                key: read("client_key", key)?,
            }),
            _ => None,
        };
        Ok(OwnedTLSConfig {
            identity,
            cert_chain,
        })
    }

    /// Returns when the connection has failed or shutdown was asked for; notes when the
    /// broker blocks and unblocks it.
    async fn wait_for_failure(&self, session: &Session) {
        let connection = &session.connection;
        let mut events = connection.events_listener();
        let mut poll = tokio::time::interval(STATUS_POLL);
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(lapin::Event::Error(err)) => {
                        if connection.status().connected() {
                            // A channel's error (e.g. consuming a queue that does not exist
                            // yet): that channel's owner retries; the connection lives on.
                            debug!(error = %error_chain(&err), purpose = self.purpose.as_str(), "broker channel error");
                            continue;
                        }
                        warn!(error = %error_chain(&err), purpose = self.purpose.as_str(), "broker connection error");
                        return;
                    }
                    Some(lapin::Event::ConnectionBlocked(reason)) => {
                        warn!(%reason, purpose = self.purpose.as_str(), "the broker blocks this connection (a resource alarm): publishing waits until it lifts");
                        session.set_blocked(Some(reason));
                    }
                    Some(lapin::Event::ConnectionUnblocked) => {
                        info!(purpose = self.purpose.as_str(), "the broker unblocked this connection");
                        session.set_blocked(None);
                    }
                    Some(_) => {}
                    None => return,
                },
                _ = poll.tick() => {
                    if !connection.status().connected() {
                        return;
                    }
                }
                () = self.shutdown.cancelled() => return,
            }
        }
    }
}

/// The delay before reconnection attempt `failures + 1`: exponential, capped, with jitter
/// (between half and all of the step) so that many clients do not reconnect in lockstep.
fn backoff(failures: u32) -> Duration {
    let step = BACKOFF_FIRST
        .saturating_mul(2u32.saturating_pow(failures.min(16)))
        .min(BACKOFF_CAP);
    let jitter = rand::rng().random_range(0.5..=1.0);
    step.mul_f64(jitter)
}

/// Keeps one consumer alive across reconnections and forwards what it receives.
struct ConsumerLoop {
    link: watch::Receiver<Link>,
    shutdown: CancellationToken,
    queue: String,
    prefetch: u16,
    sender: mpsc::Sender<Incoming>,
}

impl ConsumerLoop {
    async fn run(self) {
        let mut generation = 0;
        let mut failures: u32 = 0;
        let mut refused_before = false;
        let mut missing_before = false;
        loop {
            let session = match session_after(&self.link, generation, &self.shutdown).await {
                Ok(session) => session,
                Err(_) => return,
            };
            match self.consume(&session).await {
                Ok(ForwardEnd::ReceiverGone) => return,
                Ok(ForwardEnd::StreamEnded) => failures = 0,
                Err(err) => {
                    let error = error_chain(&err);
                    if error.contains("ACCESS_REFUSED") {
                        // Permissions do not fix themselves quickly: say so plainly, once,
                        // and keep trying (an operator may grant them meanwhile).
                        if !refused_before {
                            error!(queue = %self.queue, %error, "this broker user may not read the queue: grant it read permission on it (see the README's hardened mode); retrying");
                        }
                        refused_before = true;
                    } else if error.contains("NOT_FOUND") {
                        // A pool's queue before the manager first declared it: expected
                        // while a member starts before the manager; said once.
                        if !missing_before {
                            info!(queue = %self.queue, "the queue does not exist yet (the manager declares it); waiting for it");
                        }
                        missing_before = true;
                    } else {
                        warn!(queue = %self.queue, %error, "cannot consume; retrying");
                    }
                }
            }
            if session.connection.status().connected() {
                // Only the channel failed (or the consumer was cancelled): try again on the
                // same connection after a pause.
                generation = session.generation - 1;
                let delay = backoff(failures);
                failures = failures.saturating_add(1);
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = self.sender.closed() => return,
                }
            } else {
                generation = session.generation;
            }
        }
    }

    async fn consume(&self, session: &Session) -> Result<ForwardEnd, BrokerError> {
        let channel = session
            .connection
            .create_channel()
            .await
            .map_err(BrokerError::amqp("channel.open"))?;
        channel
            .basic_qos(self.prefetch, BasicQosOptions::default())
            .await
            .map_err(BrokerError::amqp("basic.qos"))?;
        let mut consumer = channel
            .basic_consume(
                self.queue.as_str().into(),
                ShortString::from(""),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(BrokerError::amqp("basic.consume"))?;
        let channel_key = (session.generation, channel.id());
        debug!(queue = %self.queue, "consuming");
        loop {
            tokio::select! {
                delivery = consumer.next() => match delivery {
                    Some(Ok(delivery)) => {
                        let properties = &delivery.properties;
                        let incoming = Incoming {
                            kind: properties.kind().as_ref().map(|kind| kind.to_string()),
                            message_id: properties.message_id().as_ref().map(|id| id.to_string()),
                            user_id: properties.user_id().as_ref().map(|user| user.to_string()),
                            routing_key: delivery.routing_key.to_string(),
                            redelivered: delivery.redelivered,
                            acker: Acker::Amqp { acker: delivery.acker, channel: channel_key },
                            payload: delivery.data,
                        };
                        if self.sender.send(incoming).await.is_err() {
                            let _ = channel.close(200, ShortString::from("subscription dropped")).await;
                            return Ok(ForwardEnd::ReceiverGone);
                        }
                    }
                    Some(Err(err)) => {
                        debug!(queue = %self.queue, error = %error_chain(&err), "consumer ended");
                        return Ok(ForwardEnd::StreamEnded);
                    }
                    None => return Ok(ForwardEnd::StreamEnded),
                },
                () = self.sender.closed() => {
                    let _ = channel.close(200, ShortString::from("subscription dropped")).await;
                    return Ok(ForwardEnd::ReceiverGone);
                }
            }
        }
    }
}

enum ForwardEnd {
    ReceiverGone,
    StreamEnded,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_a_cap_with_jitter() {
        for failures in 0..40 {
            let delay = backoff(failures);
            let step = BACKOFF_FIRST
                .saturating_mul(2u32.saturating_pow(failures.min(16)))
                .min(BACKOFF_CAP);
            assert!(delay <= step && delay >= step / 2, "{failures}: {delay:?}");
        }
        assert!(backoff(30) <= BACKOFF_CAP);
    }
}
