//! UserID rules (spec §4.1): at most 32 bytes from a fixed ASCII charset.

/// UserIDs longer than this are refused (the user APIs answer 660000012 for them).
pub const MAX_USER_ID_BYTES: usize = 32;

/// The server docs' charset: ASCII letters, digits, space and `!#$%&()+-:;<=.>?@[]^_{}|~`.
///
/// The SDK's list lacks the space; Herald follows the server list so IDs registered through the
/// API can always log in (spec §4.1 recommendation).
pub fn is_valid_user_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || " !#$%&()+-:;<=.>?@[]^_{}|~".contains(c)
}

/// Why a UserID was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserIdError {
    #[error("user ID is empty")]
    Empty,
    #[error("user ID is {len} bytes long; the limit is 32")]
    TooLong { len: usize },
    #[error("user ID has the character {ch:?} at byte {index}, which is not allowed")]
    BadChar { ch: char, index: usize },
}

/// Checks emptiness, then length (so an overlong ID reports ZIM's dedicated code), then the charset.
pub fn check_user_id(id: &str) -> Result<(), UserIdError> {
    if id.is_empty() {
        return Err(UserIdError::Empty);
    }
    if id.len() > MAX_USER_ID_BYTES {
        return Err(UserIdError::TooLong { len: id.len() });
    }
    match id.char_indices().find(|&(_, c)| !is_valid_user_id_char(c)) {
        Some((index, ch)) => Err(UserIdError::BadChar { ch, index }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_full_charset() {
        assert_eq!(check_user_id("user_1"), Ok(()));
        assert_eq!(check_user_id("a b"), Ok(()));
        assert_eq!(check_user_id("!#$%&()+-:;<=.>?@[]^_{}|~"), Ok(()));
        assert_eq!(check_user_id(&"x".repeat(32)), Ok(()));
        let all: String = ('\0'..='\x7f').filter(|&c| is_valid_user_id_char(c)).collect();
        assert_eq!(all.len(), 26 * 2 + 10 + 26);
    }

    #[test]
    fn refuses_with_the_right_reason() {
        assert_eq!(check_user_id(""), Err(UserIdError::Empty));
        assert_eq!(check_user_id(&"x".repeat(33)), Err(UserIdError::TooLong { len: 33 }));
        // Length is in bytes: 11 three-byte chars are 33 bytes.
        assert_eq!(check_user_id(&"好".repeat(11)), Err(UserIdError::TooLong { len: 33 }));
        assert_eq!(check_user_id("ab好"), Err(UserIdError::BadChar { ch: '好', index: 2 }));
        for bad in ['"', '\'', '*', ',', '/', '\\', '`', '\t', '\n', '\0'] {
            let id = format!("a{bad}");
            assert_eq!(check_user_id(&id), Err(UserIdError::BadChar { ch: bad, index: 1 }), "{bad:?}");
        }
    }
}
