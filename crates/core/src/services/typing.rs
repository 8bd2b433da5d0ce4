//! [`Typing`]: membership check, throttled start events and stop events (explicit, on message,
//! on expiry) over a [`TypingStore`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::observe;
use crate::config::TypingConfig;
use crate::error::{Error, Result};
use crate::ids::{ConversationId, UserId};
use crate::typing::{TypingEvent, TypingStart, TypingStore};

/// Where `typing` events go. In the facade they are published, live only, on the conversation's
/// channel `chat:<conversation_id>`; the default does nothing.
#[async_trait]
pub trait TypingEvents: Send + Sync + 'static {
    /// A user started or stopped typing. An implementation logs its own failures.
    async fn typing_changed(&self, event: &TypingEvent) {
        let _ = event;
    }
}

/// [`TypingEvents`] that drops every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTypingEvents;

impl TypingEvents for NoTypingEvents {}

/// Who may type in a conversation, given to [`Typing::new`]. The facade's
/// ([`crate::SwitchboardBuilder::build`]) asks the conversations service: only members may type.
#[async_trait]
pub trait MembershipCheck: Send + Sync + 'static {
    /// Whether `user` is a member of `conversation`.
    async fn is_member(&self, conversation: &ConversationId, user: &UserId) -> Result<bool>;
}

/// [`MembershipCheck`] that admits everyone: for a [`Typing`] service built without
/// conversations (the facade always checks conversation membership).
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAllMembers;

#[async_trait]
impl MembershipCheck for AllowAllMembers {
    async fn is_member(&self, _conversation: &ConversationId, _user: &UserId) -> Result<bool> {
        Ok(true)
    }
}

/// The typing service. Cheap to clone; clones share their event sink and membership check.
#[derive(Clone)]
pub struct Typing {
    store: Arc<dyn TypingStore>,
    config: TypingConfig,
    events: Arc<dyn TypingEvents>,
    membership: Arc<dyn MembershipCheck>,
}

impl std::fmt::Debug for Typing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Typing").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Typing {
    /// Wraps `store`; changes are announced to `events` ([`NoTypingEvents`] for none) and who
    /// may type is asked of `membership`.
    pub fn new(
        store: Arc<dyn TypingStore>,
        config: TypingConfig,
        events: Arc<dyn TypingEvents>,
        membership: Arc<dyn MembershipCheck>,
    ) -> Self {
        Typing { store, config, events, membership }
    }

    /// The settings in force.
    pub fn config(&self) -> &TypingConfig {
        &self.config
    }

    /// How often [`Typing::sweep`] should run on each node.
    pub fn sweep_interval(&self) -> Duration {
        Duration::from_millis(self.config.sweep_interval_ms)
    }

    async fn emit(&self, event: &TypingEvent) {
        metrics::counter!("switchboard_typing_events_total", "typing" => if event.typing { "true" } else { "false" })
            .increment(1);
        self.events.typing_changed(event).await;
    }

    /// `user` is typing in `conversation` (members only): extends the TTL and emits a start
    /// event unless throttled. See [`TypingStore::start`].
    pub async fn start(&self, conversation: &ConversationId, user: &UserId) -> Result<TypingStart> {
        if !self.membership.is_member(conversation, user).await? {
            return Err(Error::PermissionDenied("not a member of this conversation".into()));
        }
        let ttl = Duration::from_millis(self.config.ttl_ms);
        let throttle = Duration::from_millis(self.config.throttle_ms);
        let started = observe("typing", "start", self.store.start(conversation, user, ttl, throttle)).await?;
        if started.first {
            let event = TypingEvent { conversation_id: conversation.clone(), user_id: user.clone(), typing: true };
            self.emit(&event).await;
        }
        Ok(started)
    }

    /// `user` stopped typing (explicitly, or because their message was posted); emits the stop
    /// event if they were typing. See [`TypingStore::stop`].
    pub async fn stop(&self, conversation: &ConversationId, user: &UserId) -> Result<bool> {
        let was = observe("typing", "stop", self.store.stop(conversation, user)).await?;
        if was {
            let event = TypingEvent { conversation_id: conversation.clone(), user_id: user.clone(), typing: false };
            self.emit(&event).await;
        }
        Ok(was)
    }

    /// The `typing {conversation_id, typing}` RPC: [`Typing::start`] or [`Typing::stop`].
    pub async fn set(&self, conversation: &ConversationId, user: &UserId, typing: bool) -> Result<()> {
        if typing {
            self.start(conversation, user).await.map(|_| ())
        } else {
            self.stop(conversation, user).await.map(|_| ())
        }
    }

    /// Users typing in `conversation`.
    pub async fn typing_users(&self, conversation: &ConversationId) -> Result<Vec<UserId>> {
        observe("typing", "typing_users", self.store.typing_users(conversation)).await
    }

    /// One sweep: emits a stop event for every expired entry (each by exactly one node). Run it
    /// every [`Typing::sweep_interval`] on every node. Returns how many stops were emitted.
    pub async fn sweep(&self) -> Result<usize> {
        let mut total = 0;
        loop {
            let expired = observe("typing", "sweep", self.store.sweep(self.config.sweep_batch)).await?;
            total += expired.len();
            for event in &expired {
                self.emit(event).await;
            }
            // A full batch of conversations may leave more due; fewer events than the batch
            // size means fewer conversations, so this pass is done.
            if expired.len() < self.config.sweep_batch {
                return Ok(total);
            }
        }
    }
}
