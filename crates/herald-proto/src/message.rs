//! What a broadcast carries and where it goes: ZIM's `MessageType` and `PushType` as enums, so
//! the API, the fan-out, the push worker and the store agree on what each number means.

use std::fmt;

/// ZIM's `MessageType` of a message the server sends (spec §3.1). Clients also know 0 Unknown,
/// 31 Revoke, 32 Tips and 100 Combined, which no server API can send, so they are not here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    Text,
    Command,
    MultiItem,
    Image,
    File,
    Audio,
    Video,
    Barrage,
    Custom,
}

/// The message types `SendMessageToAllUsers` may carry (spec §3.1), in ZIM's order.
pub const BROADCASTABLE: [MessageType; 6] = [
    MessageType::Text,
    MessageType::Image,
    MessageType::File,
    MessageType::Audio,
    MessageType::Video,
    MessageType::Custom,
];

/// A number that is not one of ZIM's server message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not a ZIM message type")]
pub struct UnknownMessageType(pub i64);

impl MessageType {
    pub fn code(self) -> u32 {
        match self {
            MessageType::Text => 1,
            MessageType::Command => 2,
            MessageType::MultiItem => 10,
            MessageType::Image => 11,
            MessageType::File => 12,
            MessageType::Audio => 13,
            MessageType::Video => 14,
            MessageType::Barrage => 20,
            MessageType::Custom => 200,
        }
    }

    pub fn from_code(code: i64) -> Result<MessageType, UnknownMessageType> {
        Ok(match code {
            1 => MessageType::Text,
            2 => MessageType::Command,
            10 => MessageType::MultiItem,
            11 => MessageType::Image,
            12 => MessageType::File,
            13 => MessageType::Audio,
            14 => MessageType::Video,
            20 => MessageType::Barrage,
            200 => MessageType::Custom,
            other => return Err(UnknownMessageType(other)),
        })
    }

    /// Whether ZIM lets `SendMessageToAllUsers` carry this type.
    pub fn is_broadcastable(self) -> bool {
        BROADCASTABLE.contains(&self)
    }

    /// Image, file, audio and video: their `Message` is a JSON object describing the media.
    pub fn is_media(self) -> bool {
        matches!(self, MessageType::Image | MessageType::File | MessageType::Audio | MessageType::Video)
    }

    /// Custom messages (200) carry a developer-chosen `SubMsgType`.
    pub fn has_sub_type(self) -> bool {
        self == MessageType::Custom
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())
    }
}

/// Where a broadcast goes (`PushType` of `SendMessageToAllUsers`, spec §1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PushType {
    /// 0, and the default when absent: every online session, no vendor push.
    #[default]
    OnlineOnly,
    /// 1: every online session, and a vendor push to every offline user with a push ID.
    OnlineAndOffline,
    /// 2: a vendor push to every offline user with a push ID; nothing to online sessions.
    OfflineOnly,
}

/// A number that is not 0, 1 or 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("PushType {0} is not one of 0, 1, 2")]
pub struct UnknownPushType(pub i64);

impl PushType {
    pub fn code(self) -> u8 {
        match self {
            PushType::OnlineOnly => 0,
            PushType::OnlineAndOffline => 1,
            PushType::OfflineOnly => 2,
        }
    }

    pub fn from_code(code: i64) -> Result<PushType, UnknownPushType> {
        match code {
            0 => Ok(PushType::OnlineOnly),
            1 => Ok(PushType::OnlineAndOffline),
            2 => Ok(PushType::OfflineOnly),
            other => Err(UnknownPushType(other)),
        }
    }

    /// Whether online sessions get the broadcast over their WebSocket.
    pub fn reaches_online_sessions(self) -> bool {
        self != PushType::OfflineOnly
    }

    /// Whether offline users get a vendor push, which needs a durable push job.
    pub fn pushes_offline(self) -> bool {
        self != PushType::OnlineOnly
    }
}

impl fmt::Display for PushType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_type_codes_round_trip() {
        for code in [1, 2, 10, 11, 12, 13, 14, 20, 200] {
            assert_eq!(i64::from(MessageType::from_code(code).unwrap().code()), code);
        }
        for bad in [0, 3, 15, 31, 32, 100, 201, -1] {
            assert_eq!(MessageType::from_code(bad), Err(UnknownMessageType(bad)));
        }
    }

    #[test]
    fn broadcastable_types_are_zims() {
        let codes: Vec<u32> = BROADCASTABLE.iter().map(|t| t.code()).collect();
        assert_eq!(codes, [1, 11, 12, 13, 14, 200]);
        assert!(!MessageType::Command.is_broadcastable() && !MessageType::Barrage.is_broadcastable());
        assert!(MessageType::Video.is_media() && !MessageType::Custom.is_media() && !MessageType::Text.is_media());
    }

    #[test]
    fn push_types_say_where_a_broadcast_goes() {
        let routes: Vec<(u8, bool, bool)> = [PushType::OnlineOnly, PushType::OnlineAndOffline, PushType::OfflineOnly]
            .iter()
            .map(|p| (p.code(), p.reaches_online_sessions(), p.pushes_offline()))
            .collect();
        assert_eq!(routes, [(0, true, false), (1, true, true), (2, false, true)]);
        assert_eq!(PushType::from_code(3), Err(UnknownPushType(3)));
        assert_eq!(PushType::default(), PushType::OnlineOnly);
    }
}
