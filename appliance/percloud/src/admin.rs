//! Administrative operations, the same whether the CLI runs them on the store directly or
//! a running daemon runs them on the CLI's behalf through the control socket.

use percloud_store::{Store, StoreError};
use serde::{Deserialize, Serialize};

/// An operation asked of the store. Passwords arrive already hashed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    UserAdd {
        name: String,
        password_hash: String,
        quota: Option<u64>,
    },
    UserList,
    UserPasswd {
        name: String,
        password_hash: String,
    },
    UserQuota {
        name: String,
        quota: Option<u64>,
    },
    UserRemove {
        name: String,
    },
    Fsck {
        repair: bool,
    },
    Gc,
    /// System updates: answered by the daemon's update worker, never on the store.
    UpdateCheck,
    UpdateInstall {
        source: String,
        force: bool,
    },
    UpdateStatus,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    Done { message: String },
    Users { users: Vec<UserLine> },
    Fsck(FsckSummary),
    UpdateStatus { status: serde_json::Value },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserLine {
    pub name: String,
    pub used: u64,
    pub quota: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FsckSummary {
    pub chunks_checked: u64,
    pub bytes_checked: u64,
    pub versions_checked: u64,
    pub nodes_checked: u64,
    pub problems: Vec<FsckLine>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FsckLine {
    pub object: String,
    pub detail: String,
    pub repaired: bool,
}

impl Request {
    /// The operation's name, for logs (requests carry password hashes: never log them whole).
    pub fn op(&self) -> &'static str {
        match self {
            Request::UserAdd { .. } => "user_add",
            Request::UserList => "user_list",
            Request::UserPasswd { .. } => "user_passwd",
            Request::UserQuota { .. } => "user_quota",
            Request::UserRemove { .. } => "user_remove",
            Request::Fsck { .. } => "fsck",
            Request::Gc => "gc",
            Request::UpdateCheck => "update_check",
            Request::UpdateInstall { .. } => "update_install",
            Request::UpdateStatus => "update_status",
        }
    }

    /// Whether the update worker answers this request (not the store).
    pub fn is_update(&self) -> bool {
        matches!(
            self,
            Request::UpdateCheck | Request::UpdateInstall { .. } | Request::UpdateStatus
        )
    }
}

/// Runs `request` on `store`; errors come back as the one-line text the CLI prints.
pub fn execute(store: &Store, request: Request) -> Result<Reply, StoreError> {
    let done = |message: String| Ok(Reply::Done { message });
    match request {
        Request::UserAdd {
            name,
            password_hash,
            quota,
        } => {
            store.create_user(&name, &password_hash, quota)?;
            done(format!("user {name} created"))
        }
        Request::UserList => Ok(Reply::Users {
            users: store
                .users()?
                .into_iter()
                .map(|u| UserLine {
                    name: u.name,
                    used: u.used,
                    quota: u.quota,
                })
                .collect(),
        }),
        Request::UserPasswd {
            name,
            password_hash,
        } => {
            store.set_password_hash(&name, &password_hash)?;
            done(format!("password of {name} changed"))
        }
        Request::UserQuota { name, quota } => {
            store.set_quota(&name, quota)?;
            done(format!("quota of {name} set"))
        }
        Request::UserRemove { name } => {
            store.remove_user(&name)?;
            done(format!("user {name} removed"))
        }
        Request::Fsck { repair } => {
            let report = store.fsck(repair)?;
            Ok(Reply::Fsck(FsckSummary {
                chunks_checked: report.chunks_checked,
                bytes_checked: report.bytes_checked,
                versions_checked: report.versions_checked,
                nodes_checked: report.nodes_checked,
                problems: report
                    .problems
                    .into_iter()
                    .map(|p| FsckLine {
                        object: p.object,
                        detail: p.detail,
                        repaired: p.repaired,
                    })
                    .collect(),
            }))
        }
        Request::Gc => {
            let expired = store.expire(std::time::SystemTime::now())?;
            let gc = store.gc()?;
            done(format!(
                "expired {} versions and {} trash items; removed {} chunks, compacted {} packs, reclaimed {} bytes",
                expired.versions_removed,
                expired.trash_items_purged,
                gc.chunks_removed,
                gc.packs_compacted,
                gc.bytes_reclaimed
            ))
        }
        Request::UpdateCheck | Request::UpdateInstall { .. } | Request::UpdateStatus => {
            done("updates go through the running daemon".into())
        }
    }
}

/// Human-readable output of a reply.
pub fn render(reply: &Reply) -> String {
    match reply {
        Reply::UpdateStatus { status } => crate::update::render_status(status),
        Reply::Done { message } => message.clone(),
        Reply::Users { users } if users.is_empty() => "no users".to_owned(),
        Reply::Users { users } => users
            .iter()
            .map(|u| {
                let quota = u
                    .quota
                    .map_or("unlimited".to_owned(), |q| format!("{q} bytes"));
                format!("{}\tused {} bytes\tquota {quota}", u.name, u.used)
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Reply::Fsck(summary) => {
            let mut out = format!(
                "checked {} chunks ({} bytes), {} versions, {} files and folders: ",
                summary.chunks_checked,
                summary.bytes_checked,
                summary.versions_checked,
                summary.nodes_checked
            );
            if summary.problems.is_empty() {
                out.push_str("clean");
            } else {
                out.push_str(&format!("{} problems", summary.problems.len()));
                for p in &summary.problems {
                    let state = if p.repaired { "quarantined" } else { "found" };
                    out.push_str(&format!("\n  {state}: {}: {}", p.object, p.detail));
                }
            }
            out
        }
    }
}
