//! Share-link tokens and unlock cookies, derived from the box's link key.
//!
//! token = base64url(keyed_BLAKE3(link_key, nonce)); the store keeps the nonce and
//! BLAKE3(token bytes), so the owner's list can show a link again while a copy of the
//! database alone reveals none. An unlock cookie is a keyed MAC of (share id, password hash):
//! it stops working when the password changes or the link is revoked.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use percloud_store::Share;
use subtle::ConstantTimeEq;

/// Context string separating the cookie key from the token key.
const COOKIE_KEY_CONTEXT: &str = "percloud 2024 share unlock cookie v1";

/// Derives tokens and cookies from the link key.
#[derive(Clone)]
pub(crate) struct LinkKeys {
    token_key: [u8; 32],
    cookie_key: [u8; 32],
}

impl std::fmt::Debug for LinkKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKeys(..)")
    }
}

impl LinkKeys {
    pub fn new(link_key: [u8; 32]) -> Self {
        LinkKeys {
            token_key: link_key,
            cookie_key: blake3::derive_key(COOKIE_KEY_CONTEXT, &link_key),
        }
    }

    /// The raw token bytes for `nonce`.
    pub fn token_bytes(&self, nonce: &[u8; 32]) -> [u8; 32] {
        *blake3::keyed_hash(&self.token_key, nonce).as_bytes()
    }

    /// The token as it appears in URLs (43 characters).
    pub fn token(&self, nonce: &[u8; 32]) -> String {
        URL_SAFE_NO_PAD.encode(self.token_bytes(nonce))
    }

    /// A fresh nonce and the token hash to store with it.
    pub fn mint(&self) -> ([u8; 32], [u8; 32]) {
        let nonce: [u8; 32] = rand::random();
        let hash = token_hash(&self.token_bytes(&nonce));
        (nonce, hash)
    }

    /// Cookie name and value proving `share` was unlocked.
    pub fn unlock_cookie(&self, share: &Share) -> (String, String) {
        let mut mac = blake3::Hasher::new_keyed(&self.cookie_key);
        mac.update(&share.id.to_le_bytes());
        mac.update(share.password_hash.as_deref().unwrap_or("").as_bytes());
        (
            cookie_name(share.id),
            URL_SAFE_NO_PAD.encode(mac.finalize().as_bytes()),
        )
    }

    /// Whether `presented` is the valid unlock cookie value for `share` (constant time).
    pub fn cookie_valid(&self, share: &Share, presented: &str) -> bool {
        let (_, expected) = self.unlock_cookie(share);
        expected.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

/// The hash under which the store finds a link.
pub(crate) fn token_hash(token_bytes: &[u8; 32]) -> [u8; 32] {
    *blake3::hash(token_bytes).as_bytes()
}

/// Decodes a token from a URL; `None` unless it is exactly 32 bytes of base64url.
pub(crate) fn decode_token(token: &str) -> Option<[u8; 32]> {
    if token.len() != 43 {
        return None;
    }
    URL_SAFE_NO_PAD.decode(token).ok()?.try_into().ok()
}

pub(crate) fn cookie_name(id: u64) -> String {
    format!("percloud_share_{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_differ_per_key() {
        let keys = LinkKeys::new([7; 32]);
        let (nonce, hash) = keys.mint();
        let token = keys.token(&nonce);
        assert_eq!(token.len(), 43);
        let bytes = decode_token(&token).expect("decodes");
        assert_eq!(token_hash(&bytes), hash);
        assert_ne!(LinkKeys::new([8; 32]).token(&nonce), token);
        assert_eq!(decode_token("short"), None);
        assert_eq!(decode_token(&"!".repeat(43)), None);
    }
}
