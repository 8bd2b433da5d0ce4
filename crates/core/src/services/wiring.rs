//! How the services feed each other: presence and typing events become publications, and the
//! typing service asks conversations who is a member.

use async_trait::async_trait;
use serde_json::json;

use super::{Conversations, MembershipCheck, PresenceEvents, Streams, TypingEvents};
use crate::channel::ChannelName;
use crate::control;
use crate::error::Result;
use crate::ids::{ConversationId, DeviceId, UserId};
use crate::presence::UserPresence;
use crate::stream::NewPublication;
use crate::typing::TypingEvent;

/// Publishes `presence.changed` on `presence:<user>` (stored: a subscriber that reconnects
/// learns the latest state by recovery).
pub(crate) struct PresenceToStreams(pub(crate) Streams);

#[async_trait]
impl PresenceEvents for PresenceToStreams {
    async fn presence_changed(&self, presence: &UserPresence) {
        let channel = ChannelName::presence(&presence.user_id);
        let event = json!({"type": "presence.changed", "data": presence});
        if let Err(e) = self.0.publish(&channel, NewPublication::new(event)).await {
            tracing::warn!(user.id = %presence.user_id, error = %e, "presence.changed not published");
        }
    }

    async fn presence_changed_for(&self, followers: &[UserId], presence: &UserPresence) {
        let event = json!({"type": "presence.changed", "data": presence});
        for follower in followers {
            let publication = NewPublication::new(event.clone());
            if let Err(e) = self.0.publish(&ChannelName::user(follower), publication).await {
                tracing::warn!(user.id = %follower, error = %e, "presence.changed not published on the user channel");
            }
        }
    }

    /// Tells `user`'s subscriptions to each removed contact's `presence:` channel to check again.
    async fn contacts_removed(&self, user: &UserId, removed: &[UserId]) -> Result<()> {
        let events = removed
            .iter()
            .flat_map(|contact| {
                let channel = ChannelName::presence(contact);
                control::access_changed(Some(std::slice::from_ref(user))).into_iter().map(move |p| (channel.clone(), p))
            })
            .collect();
        self.0.publish_control_all(events).await
    }

    async fn device_registered(&self, user: &UserId, device: &DeviceId) -> Result<()> {
        self.0.start_cursor(user, device).await.map(|_| ())
    }
}

/// Publishes `typing` on `chat:<conversation>`, live only: typing never takes a place in the
/// conversation's history or its offsets.
pub(crate) struct TypingToStreams(pub(crate) Streams);

#[async_trait]
impl TypingEvents for TypingToStreams {
    async fn typing_changed(&self, event: &TypingEvent) {
        let Ok(channel) = ChannelName::chat(event.conversation_id.as_str()) else { return };
        let publication = json!({"type": "typing", "data": event});
        if let Err(e) = self.0.publish_ephemeral(&channel, NewPublication::new(publication)).await {
            tracing::warn!(conversation.id = %event.conversation_id, error = %e, "typing event not published");
        }
    }
}

/// Conversation members may type there; nobody else.
pub(crate) struct MembersOfConversations(pub(crate) Conversations);

#[async_trait]
impl MembershipCheck for MembersOfConversations {
    async fn is_member(&self, conversation: &ConversationId, user: &UserId) -> Result<bool> {
        self.0.is_member(conversation, user).await
    }
}
