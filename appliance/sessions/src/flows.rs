//! Pending device sign-ins (the Nextcloud Login Flow v2): a device starts a flow and polls
//! with one token while its user opens a page with another, signs in and grants access.
//!
//! Flows live in memory only: they last minutes, and a restart merely makes the device start
//! over. Both tokens are 32 random bytes (base64url); the maps are keyed by their BLAKE3
//! digests, so neither lookup time nor a memory dump gives a token away. Only the poll token
//! collects the result, and only once. Bounded: [`MAX_FLOWS`] in all and
//! [`MAX_FLOWS_PER_ADDRESS`] per client address, since anyone may start one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::{SessionError, truncate};

/// How long a flow waits to be granted and collected.
pub const FLOW_LIFETIME: Duration = Duration::from_secs(20 * 60);
/// Pending flows at most.
pub const MAX_FLOWS: usize = 1024;
/// Pending flows one client address may have.
pub const MAX_FLOWS_PER_ADDRESS: usize = 16;
/// Longest device name kept, in bytes.
const MAX_DEVICE: usize = 200;

type Digest = [u8; 32];

/// The tokens of a new flow: `poll` goes to the device only, `login` into the page's URL.
#[derive(Debug, Clone)]
pub struct StartedFlow {
    pub poll_token: String,
    pub login_token: String,
}

/// What the grant page shows about a pending flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingFlow {
    /// The device's name, from its User-Agent.
    pub device: String,
    /// The address the device asked from, so the user can tell a device of theirs from a
    /// stranger's request (the name comes from the device and proves nothing).
    pub address: String,
    /// Whether someone already granted it (the device has not collected yet).
    pub granted: bool,
    /// Time left before it expires.
    pub expires_in: Duration,
}

/// A granted flow, handed out once to the poller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantedFlow {
    pub user_id: u64,
    pub user_name: String,
    pub device: String,
}

#[derive(Debug)]
struct Flow {
    login: Digest,
    device: String,
    address: String,
    expires: Instant,
    granted: Option<(u64, String)>,
}

#[derive(Debug, Default)]
struct Table {
    /// poll digest → flow.
    by_poll: HashMap<Digest, Flow>,
    /// login digest → poll digest.
    by_login: HashMap<Digest, Digest>,
}

impl Table {
    fn purge(&mut self, now: Instant) {
        let by_login = &mut self.by_login;
        self.by_poll.retain(|_, flow| {
            let live = flow.expires > now;
            if !live {
                by_login.remove(&flow.login);
            }
            live
        });
    }

    fn live_by_login(&mut self, login_token: &str, now: Instant) -> Option<&mut Flow> {
        self.purge(now);
        let poll = self.by_login.get(&digest(login_token))?;
        self.by_poll.get_mut(poll)
    }
}

/// The pending flows; share it behind an `Arc`.
#[derive(Debug, Default)]
pub struct LoginFlows {
    table: Mutex<Table>,
}

fn digest(token: &str) -> Digest {
    *blake3::hash(token.as_bytes()).as_bytes()
}

fn token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

impl LoginFlows {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // A panic while holding the lock leaves only whole entries behind: keep going.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a flow for `device` (its User-Agent) asking from `address`.
    pub fn start(
        &self,
        device: &str,
        address: &str,
        now: Instant,
    ) -> Result<StartedFlow, SessionError> {
        let mut table = self.lock();
        table.purge(now);
        let from_here = table
            .by_poll
            .values()
            .filter(|f| f.address == address)
            .count();
        if table.by_poll.len() >= MAX_FLOWS || from_here >= MAX_FLOWS_PER_ADDRESS {
            return Err(SessionError::TooManyFlows);
        }
        let started = StartedFlow {
            poll_token: token(),
            login_token: token(),
        };
        let (poll, login) = (digest(&started.poll_token), digest(&started.login_token));
        table.by_login.insert(login, poll);
        table.by_poll.insert(
            poll,
            Flow {
                login,
                device: truncate(device.trim(), MAX_DEVICE),
                address: address.to_owned(),
                expires: now + FLOW_LIFETIME,
                granted: None,
            },
        );
        Ok(started)
    }

    /// The live flow the page's `login_token` names.
    pub fn pending(&self, login_token: &str, now: Instant) -> Option<PendingFlow> {
        let mut table = self.lock();
        let flow = table.live_by_login(login_token, now)?;
        Some(PendingFlow {
            device: flow.device.clone(),
            address: flow.address.clone(),
            granted: flow.granted.is_some(),
            expires_in: flow.expires.saturating_duration_since(now),
        })
    }

    /// Grants the flow to a signed-in user; `false` when it is unknown or expired.
    pub fn grant(&self, login_token: &str, user_id: u64, user_name: &str, now: Instant) -> bool {
        let mut table = self.lock();
        match table.live_by_login(login_token, now) {
            Some(flow) => {
                flow.granted = Some((user_id, user_name.to_owned()));
                true
            }
            None => false,
        }
    }

    /// Ends a flow from the page (the user said no); `false` when it is unknown or expired.
    pub fn cancel(&self, login_token: &str, now: Instant) -> bool {
        let mut table = self.lock();
        table.purge(now);
        let Some(poll) = table.by_login.remove(&digest(login_token)) else {
            return false;
        };
        table.by_poll.remove(&poll).is_some()
    }

    /// The device's poll: the grant once it exists, then never again; `None` before the grant
    /// and for unknown or expired tokens.
    pub fn poll(&self, poll_token: &str, now: Instant) -> Option<GrantedFlow> {
        let mut table = self.lock();
        table.purge(now);
        let poll = digest(poll_token);
        table.by_poll.get(&poll)?.granted.as_ref()?;
        let flow = table.by_poll.remove(&poll)?;
        table.by_login.remove(&flow.login);
        let (user_id, user_name) = flow.granted?;
        Some(GrantedFlow {
            user_id,
            user_name,
            device: flow.device,
        })
    }

    /// Pending flows now, for tests and the admin page.
    pub fn len(&self) -> usize {
        self.lock().by_poll.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flow_is_granted_then_collected_once() {
        let flows = LoginFlows::new();
        let t0 = Instant::now();
        let f = flows
            .start("Nextcloud Android", "10.0.0.2", t0)
            .expect("start");
        assert_eq!(f.poll_token.len(), 43);
        assert_ne!(f.poll_token, f.login_token);
        assert_eq!(flows.poll(&f.poll_token, t0), None, "not granted yet");
        let pending = flows.pending(&f.login_token, t0).expect("pending");
        assert_eq!(pending.device, "Nextcloud Android");
        assert_eq!(pending.address, "10.0.0.2");
        assert!(!pending.granted);
        // The login token cannot collect, nor can the poll token grant.
        assert!(!flows.grant(&f.poll_token, 1, "alice", t0));
        assert!(flows.grant(&f.login_token, 1, "alice", t0));
        assert_eq!(flows.poll(&f.login_token, t0), None);
        let granted = flows.poll(&f.poll_token, t0).expect("granted");
        assert_eq!(granted.user_name, "alice");
        assert_eq!(granted.device, "Nextcloud Android");
        assert_eq!(flows.poll(&f.poll_token, t0), None, "only once");
        assert_eq!(flows.pending(&f.login_token, t0), None);
        assert!(flows.is_empty());
    }

    #[test]
    fn flows_expire_and_can_be_cancelled() {
        let flows = LoginFlows::new();
        let t0 = Instant::now();
        let f = flows.start("dev", "a", t0).expect("start");
        let late = t0 + FLOW_LIFETIME;
        assert!(!flows.grant(&f.login_token, 1, "alice", late));
        assert_eq!(flows.pending(&f.login_token, late), None);
        assert!(flows.is_empty(), "purged");

        let g = flows.start("dev", "a", t0).expect("start");
        assert!(flows.grant(&g.login_token, 1, "alice", t0));
        assert_eq!(flows.poll(&g.poll_token, late), None, "granted but expired");

        let h = flows.start("dev", "a", t0).expect("start");
        assert!(flows.cancel(&h.login_token, t0));
        assert!(!flows.cancel(&h.login_token, t0));
        assert_eq!(flows.poll(&h.poll_token, t0), None);
    }

    #[test]
    fn flows_are_bounded_per_address() {
        let flows = LoginFlows::new();
        let t0 = Instant::now();
        for _ in 0..MAX_FLOWS_PER_ADDRESS {
            flows.start("dev", "a", t0).expect("start");
        }
        assert!(matches!(
            flows.start("dev", "a", t0),
            Err(SessionError::TooManyFlows)
        ));
        flows.start("dev", "b", t0).expect("another address");
        // Once they expire, the address may start again.
        flows
            .start("dev", "a", t0 + FLOW_LIFETIME)
            .expect("after expiry");
    }
}
