//! Password sign-in against the accounts in the store: HTTP Basic for WebDAV and the JSON
//! sign-in of the web pages go through the same check and the same throttle.
//!
//! Basic credentials (devices: WebDAV, the Nextcloud apps) may carry an app password instead
//! of the account password (`percloud_sessions::AppPassword`). Those are looked up by digest;
//! a check is remembered only until any app password is revoked (the session database's
//! generation changes), so revoking one stops its device at the next request.
//! The web pages' sign-in and password confirmations ([`Authenticator::sign_in`]) accept only
//! the account password: an app password cannot open a browser session or change a password.
//!
//! Verifying an argon2id hash costs tens of milliseconds on a Raspberry Pi, and WebDAV clients
//! send credentials with every request. A successful check is therefore remembered for a few
//! minutes as a keyed BLAKE3 digest of the credentials (the key is random per process and never
//! stored), tied to the stored hash so that a password change invalidates it at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use http::{HeaderMap, header};
use percloud_accounts::{AccountThrottle, LoginThrottle, ThrottleConfig};
use percloud_sessions::{APP_TOUCH_INTERVAL, AppPassword, Sessions, looks_like_app_password};
use percloud_store::{Store, User};

use crate::json::Resp;
use crate::responses;

/// How long a verified credential is trusted without running argon2 again.
const VERIFIED_TTL: Duration = Duration::from_secs(300);
/// Bound on remembered credentials; the cache is cleared when it fills.
const VERIFIED_CAP: usize = 1024;

/// What authenticating a request found.
#[derive(Debug)]
pub enum AuthOutcome {
    Authenticated(User),
    /// No credentials were sent.
    Missing,
    /// Wrong name or password, or a malformed header.
    Denied,
    /// Too many recent failures from this address.
    Throttled(Duration),
}

impl AuthOutcome {
    /// The signed-in user, or the answer to a request without one: 401 (which asks for
    /// credentials) or 429 while the address is throttled.
    #[expect(
        clippy::result_large_err,
        reason = "the response is the refusal itself, made once per refused request"
    )]
    pub(crate) fn into_user(self) -> Result<User, Resp> {
        match self {
            AuthOutcome::Authenticated(user) => Ok(user),
            AuthOutcome::Missing | AuthOutcome::Denied => Err(responses::unauthorized()),
            AuthOutcome::Throttled(wait) => Err(responses::too_many_attempts(wait.as_secs())),
        }
    }
}

/// An app password checked recently, trusted while `generation` is the session database's.
#[derive(Debug)]
struct KnownApp {
    app: AppPassword,
    generation: u64,
    expires: Instant,
}

#[derive(Debug)]
struct Verified {
    digest: blake3::Hash,
    password_hash: String,
    expires: Instant,
}

/// Checks Basic credentials; shared by every connection.
#[derive(Debug)]
pub struct Authenticator {
    store: Store,
    sessions: Arc<Sessions>,
    throttle: LoginThrottle,
    accounts: AccountThrottle,
    verified: Mutex<HashMap<String, Verified>>,
    known_apps: Mutex<HashMap<[u8; 32], KnownApp>>,
    cache_key: [u8; 32],
}

impl Authenticator {
    pub fn new(store: Store, sessions: Arc<Sessions>) -> Self {
        Authenticator {
            store,
            sessions,
            throttle: LoginThrottle::new(ThrottleConfig::default()),
            accounts: AccountThrottle::new(ThrottleConfig::default()),
            verified: Mutex::new(HashMap::new()),
            known_apps: Mutex::new(HashMap::new()),
            cache_key: rand::random(),
        }
    }

    /// The user a request signs in as, or the refusal to answer it with (401 or 429): what
    /// every Basic-authenticated endpoint needs.
    pub(crate) async fn require_user(
        &self,
        headers: &HeaderMap,
        client: IpAddr,
    ) -> Result<User, Resp> {
        self.authenticate(headers, client).await.into_user()
    }

    /// Authenticates the request's `Authorization: Basic` header for a client at `client`: the
    /// account password or one of the account's app passwords.
    pub async fn authenticate(&self, headers: &HeaderMap, client: IpAddr) -> AuthOutcome {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return AuthOutcome::Missing;
        };
        match parse_basic(value.as_bytes()) {
            Some((name, password)) => {
                if looks_like_app_password(&password) {
                    if let Err(wait) = self.throttle.check(client, Instant::now()) {
                        return AuthOutcome::Throttled(wait);
                    }
                    if let Some((user, _)) = self.app_password(&name, &password).await {
                        self.throttle.record_success(client);
                        return AuthOutcome::Authenticated(user);
                    }
                }
                // Not a live app password of this account: it may still be the account
                // password. A stale app password (a revoked device) counts against its
                // address only, not against the account.
                let per_account = !looks_like_app_password(&password);
                self.check_account_password(&name, &password, client, per_account)
                    .await
            }
            None => {
                if let Err(wait) = self.throttle.check(client, Instant::now()) {
                    return AuthOutcome::Throttled(wait);
                }
                self.throttle.record_failure(client, Instant::now());
                AuthOutcome::Denied
            }
        }
    }

    /// Checks `name` and `password` for a client at `client`: the one path for Basic
    /// credentials, the sign-in page and password confirmations, so all share the throttle.
    /// Failures are counted per address and per account name.
    pub async fn sign_in(&self, name: &str, password: &str, client: IpAddr) -> AuthOutcome {
        self.check_account_password(name, password, client, true)
            .await
    }

    /// The account-password check behind [`Authenticator::sign_in`]. With `per_account`
    /// false the attempt neither waits for nor counts toward the account's throttle (the
    /// address's still applies): used for a stale app password, a revoked device retrying,
    /// which is no guess at the account password and must not lock its owner out.
    async fn check_account_password(
        &self,
        name: &str,
        password: &str,
        client: IpAddr,
        per_account: bool,
    ) -> AuthOutcome {
        let now = Instant::now();
        if let Err(wait) = self.throttle.check(client, now) {
            return AuthOutcome::Throttled(wait);
        }
        // A credential verified minutes ago is no guess: the account throttle does not hold
        // it up, so someone guessing at an account cannot stall its owner's own devices.
        if per_account
            && !self.known_good(name, password)
            && let Err(wait) = self.accounts.check(name, now)
        {
            return AuthOutcome::Throttled(wait);
        }
        match self.verify(name, password).await {
            Some(user) => {
                self.throttle.record_success(client);
                self.accounts.record_success(name);
                AuthOutcome::Authenticated(user)
            }
            None => {
                self.throttle.record_failure(client, Instant::now());
                if per_account {
                    self.accounts.record_failure(name, Instant::now());
                }
                AuthOutcome::Denied
            }
        }
    }

    /// The app password the request's Basic credentials carry, when they carry a live one of
    /// that account (for the endpoints that act on the device's own app password).
    pub async fn app_password_of(&self, headers: &HeaderMap) -> Option<AppPassword> {
        let (name, password) = parse_basic(headers.get(header::AUTHORIZATION)?.as_bytes())?;
        if !looks_like_app_password(&password) {
            return None;
        }
        self.app_password(&name, &password)
            .await
            .map(|(_, app)| app)
    }

    /// The user and app password behind `name`:`password`, if `password` is a live app
    /// password of the existing account `name` (a removed and recreated account has a new id,
    /// so the old account's passwords do not carry over).
    ///
    /// A check is remembered (keyed digest, as for account passwords) while no app password
    /// has been revoked since and for at most [`APP_TOUCH_INTERVAL`], so a syncing device
    /// costs no database read per request, a revocation still stops it at once, and its last
    /// use is still recorded.
    async fn app_password(&self, name: &str, password: &str) -> Option<(User, AppPassword)> {
        let key = *self.digest(name, password).as_bytes();
        // Read before the check, compared before trusting (see `app_password_generation`).
        let generation = self.sessions.app_password_generation();
        let cached = self.known_apps.lock().ok().and_then(|known| {
            known
                .get(&key)
                .filter(|k| k.generation == generation && k.expires > Instant::now())
                .map(|k| k.app.clone())
        });
        let app = match cached {
            Some(app) => app,
            None => {
                let app = self.check_app_password(name, password).await?;
                if let Ok(mut known) = self.known_apps.lock() {
                    if known.len() >= VERIFIED_CAP {
                        known.clear();
                    }
                    let expires = Instant::now() + APP_TOUCH_INTERVAL;
                    known.insert(
                        key,
                        KnownApp {
                            app: app.clone(),
                            generation,
                            expires,
                        },
                    );
                }
                app
            }
        };
        // The account must still be the one the password was made for, on every request.
        match self.store.user(name) {
            Ok(Some(user)) if user.id == app.user_id => Some((user, app)),
            Ok(_) => None,
            Err(error) => {
                tracing::error!(%error, "reading the user record failed");
                None
            }
        }
    }

    /// Looks `password` up in the session database: an app password of account `name`?
    async fn check_app_password(&self, name: &str, password: &str) -> Option<AppPassword> {
        let sessions = self.sessions.clone();
        let password = password.to_owned();
        let found = tokio::task::spawn_blocking(move || {
            sessions.check_app_password(&password, SystemTime::now())
        })
        .await;
        match found {
            Ok(Ok(app)) => app.filter(|a| a.user_name == name),
            Ok(Err(error)) => {
                tracing::error!(%error, "checking an app password failed");
                None
            }
            Err(error) => {
                tracing::error!(%error, "checking an app password failed");
                None
            }
        }
    }

    /// Whether these exact credentials were verified recently (not yet re-checked against
    /// the stored hash; `verify` does that).
    fn known_good(&self, name: &str, password: &str) -> bool {
        let digest = self.digest(name, password);
        let Ok(verified) = self.verified.lock() else {
            return false;
        };
        verified
            .get(name)
            .is_some_and(|v| v.digest == digest && v.expires > Instant::now())
    }

    async fn verify(&self, name: &str, password: &str) -> Option<User> {
        let user = match self.store.user(name) {
            Ok(user) => user,
            Err(error) => {
                tracing::error!(%error, "reading the user record failed");
                return None;
            }
        };
        let digest = self.digest(name, password);
        if let Some(user) = &user
            && self.recently_verified(user, &digest)
        {
            return Some(user.clone());
        }
        let password = password.to_owned();
        let phc = user.as_ref().map(|u| u.password_hash.clone());
        let ok = tokio::task::spawn_blocking(move || match phc {
            Some(phc) => percloud_accounts::verify_password(&password, &phc),
            None => {
                // Same cost as a real check, so timing does not reveal which names exist.
                percloud_accounts::dummy_verify(&password);
                false
            }
        })
        .await
        .unwrap_or(false);
        let user = user.filter(|_| ok)?;
        self.remember(&user, digest);
        Some(user)
    }

    fn digest(&self, name: &str, password: &str) -> blake3::Hash {
        let mut hasher = blake3::Hasher::new_keyed(&self.cache_key);
        hasher.update(name.as_bytes());
        hasher.update(&[0]);
        hasher.update(password.as_bytes());
        hasher.finalize()
    }

    fn recently_verified(&self, user: &User, digest: &blake3::Hash) -> bool {
        let Ok(verified) = self.verified.lock() else {
            return false;
        };
        verified.get(&user.name).is_some_and(|v| {
            // blake3::Hash compares in constant time.
            v.digest == *digest
                && v.password_hash == user.password_hash
                && v.expires > Instant::now()
        })
    }

    fn remember(&self, user: &User, digest: blake3::Hash) {
        let Ok(mut verified) = self.verified.lock() else {
            return;
        };
        if verified.len() >= VERIFIED_CAP {
            verified.clear();
        }
        verified.insert(
            user.name.clone(),
            Verified {
                digest,
                password_hash: user.password_hash.clone(),
                expires: Instant::now() + VERIFIED_TTL,
            },
        );
    }
}

/// Parses `Basic <base64(name:password)>`; `None` when malformed.
fn parse_basic(value: &[u8]) -> Option<(String, String)> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (name, password) = decoded.split_once(':')?;
    Some((name.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::parse_basic;

    #[test]
    fn parses_basic_credentials() {
        // "alice:pa:ss" — the password may contain colons.
        assert_eq!(
            parse_basic(b"Basic YWxpY2U6cGE6c3M="),
            Some(("alice".into(), "pa:ss".into()))
        );
        assert_eq!(
            parse_basic(b"basic YWxpY2U6cGE6c3M="),
            Some(("alice".into(), "pa:ss".into()))
        );
    }

    #[test]
    fn refuses_malformed_credentials() {
        assert_eq!(parse_basic(b"Bearer abc"), None);
        assert_eq!(parse_basic(b"Basic !!!"), None);
        assert_eq!(parse_basic(b"Basic bm9jb2xvbg=="), None); // "nocolon"
        assert_eq!(parse_basic(b"Basic /w=="), None); // invalid UTF-8
        assert_eq!(parse_basic(b"Basic"), None);
    }
}
