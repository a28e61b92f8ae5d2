//! The box's side of updates, wired from `[update]`: the bootloader backend, the running
//! system's facts, checks of the channel, installs (download with resume → verify → write
//! the other slot → arm a trial → reboot) with their progress, and the status the Admin
//! page and `percloud update status` show. The logic lives in percloud-update.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use percloud_update::boot::fake::FakeBoot;
use percloud_update::boot::grub::GrubBoot;
use percloud_update::boot::tryboot::{DEVICE_TREE_BOOTLOADER, TRYBOOT_MODULE, TrybootBoot};
use percloud_update::boot::{BootControl, SystemPaths};
use percloud_update::download::Downloader;
use percloud_update::gate::{self, BootKind};
use percloud_update::install::{Installer, SlotDevices, Step};
use percloud_update::keys::Keyring;
use percloud_update::manifest::BoxFacts;
use percloud_update::release::Release;
use percloud_update::state::{Pending, StateDir};
use percloud_update::{Slot, UpdateError, channel};
use percloud_web::{MAX_BUNDLE_BYTES, UpdateControl, UpdateFuture, UpdateRefused};
use serde::Serialize;
use serde_json::json;

use crate::config::{BootBackend, UpdateConfig};
use crate::error::CliError;

/// Time for the answer that started an install to reach its client before the reboot.
const REBOOT_DELAY: Duration = Duration::from_secs(2);
const DOWNLOAD_NAME: &str = "download.pcup";
const UPLOAD_NAME: &str = "upload.pcup";

/// What an install is doing, for the status.
#[derive(Debug, Clone, Default, Serialize)]
struct Progress {
    /// `idle`, `checking`, `download`, `verify`, `write`, `read back`, `arm`, `reboot`,
    /// `failed`, `done`.
    phase: String,
    done: u64,
    total: Option<u64>,
    /// The last outcome, one sentence.
    message: String,
    started: Option<u64>,
}

/// The last answer of the channel.
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    at: u64,
    available: Option<channel::Entry>,
    error: Option<String>,
}

impl Checked {
    /// The newer bundle the channel offers, with an absolute URL.
    pub fn available(&self) -> Option<&channel::Entry> {
        self.available.as_ref()
    }
}

/// Shared by the control socket, the web app and the `update` worker; a cheap handle.
#[derive(Debug, Clone)]
pub struct Updates {
    inner: Arc<Inner>,
}

impl std::ops::Deref for Updates {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

#[derive(Debug)]
pub struct Inner {
    config: UpdateConfig,
    states: StateDir,
    boot: Box<dyn BootControl>,
    facts: BoxFacts,
    running: Slot,
    kind: BootKind,
    downloader: Downloader,
    busy: AtomicBool,
    progress: Mutex<Progress>,
    checked: Mutex<Option<Checked>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// The backend `[update] boot` names.
pub(crate) fn backend(config: &UpdateConfig) -> Result<Box<dyn BootControl>, CliError> {
    let system = SystemPaths {
        cmdline: config.cmdline.clone(),
        reboot_command: config.reboot_command.clone(),
    };
    let missing = |key: &str| CliError::Usage(format!("[update] needs `{key}`"));
    Ok(match config.boot {
        BootBackend::Grub => Box::new(GrubBoot {
            grubenv: config.grubenv.clone().ok_or_else(|| missing("grubenv"))?,
            system,
        }),
        BootBackend::Tryboot => Box::new(TrybootBoot {
            autoboot: config.autoboot.clone().ok_or_else(|| missing("autoboot"))?,
            device_tree: PathBuf::from(DEVICE_TREE_BOOTLOADER),
            module: PathBuf::from(TRYBOOT_MODULE),
            restart: percloud_system::reboot::restart_with_argument,
            system,
        }),
        BootBackend::Fake => Box::new(FakeBoot {
            path: config
                .fake_state
                .clone()
                .ok_or_else(|| missing("fake_state"))?,
        }),
    })
}

impl Updates {
    /// Reads what runs, classifies this start (a trial? a failed trial come back?) and
    /// records a failed trial in the history. Runs before the listeners are bound.
    pub fn start(config: &UpdateConfig, data: &Path) -> Result<Updates, CliError> {
        let release = Release::read(&config.release_file, env!("CARGO_PKG_VERSION"));
        let board = config
            .board
            .clone()
            .or(release.board.clone())
            .ok_or_else(|| {
                CliError::Usage(format!(
                    "[update] board is unset and {} names none",
                    config.release_file.display()
                ))
            })?;
        let boot = backend(config)?;
        let running = boot.running_slot()?;
        let states = StateDir::new(data);
        states.create()?;
        let kind = gate::on_start(&states, running, &release.version.to_string())?;
        match &kind {
            BootKind::Normal => {}
            BootKind::Trial(p) => tracing::info!(
                from = %p.from_version, to = %p.to_version, slot = %running,
                "trial boot of an update: the health gate decides whether it stays"
            ),
            BootKind::RolledBack(entry) => {
                tracing::warn!(message = %entry.message, "update rolled back")
            }
        }
        let extra_ca =
            (!config.channel_ca_file.is_empty()).then(|| PathBuf::from(&config.channel_ca_file));
        let inner = Inner {
            config: config.clone(),
            states,
            boot,
            facts: BoxFacts {
                board,
                running: release.version,
            },
            running,
            kind,
            downloader: Downloader::new(extra_ca.as_deref())?,
            busy: AtomicBool::new(false),
            progress: Mutex::new(Progress {
                phase: "idle".into(),
                ..Progress::default()
            }),
            checked: Mutex::new(None),
        };
        Ok(Updates {
            inner: Arc::new(inner),
        })
    }

    pub fn kind(&self) -> &BootKind {
        &self.kind
    }

    pub fn boot(&self) -> &dyn BootControl {
        self.boot.as_ref()
    }

    pub fn states(&self) -> &StateDir {
        &self.states
    }

    pub fn running(&self) -> Slot {
        self.running
    }

    pub fn config(&self) -> &UpdateConfig {
        &self.config
    }

    /// The status as JSON (the API's and the CLI's).
    pub fn status_json(&self) -> serde_json::Value {
        let state = self.states.load().unwrap_or_default();
        let latest = state.history.last();
        // "Update to X failed at <step>, running Y again" stays up until the next attempt.
        let report = latest
            .filter(|e| e.trial && e.outcome == "failed")
            .map(|e| e.message.clone());
        let kind = match &self.kind {
            BootKind::Normal => "normal",
            BootKind::Trial(_) => "trial",
            BootKind::RolledBack(_) => "rolled_back",
        };
        let mut history = state.history.clone();
        history.reverse();
        json!({
            "running": {
                "version": self.facts.running.to_string(),
                "board": self.facts.board,
                "slot": self.running,
            },
            "boot": {"backend": self.boot.name(), "kind": kind},
            "pending": state.pending,
            "report": report,
            "progress": *lock(&self.progress),
            "checked": *lock(&self.checked),
            "channel": self.config.channel,
            "auto_install_hour": self.config.auto_install_hour,
            "history": history,
        })
    }

    /// Asks the channel for a newer version.
    pub async fn check(&self) -> Result<Checked, UpdateError> {
        if self.config.channel.is_empty() {
            return Err(UpdateError::Channel {
                url: String::new(),
                reason: "no channel is configured ([update] channel)".into(),
            });
        }
        let url = &self.config.channel;
        let outcome = async {
            let bytes = self.downloader.fetch_small(url).await?;
            let index = channel::Index::parse(url, &bytes)?;
            let mut entry = index.best_for(&self.facts).cloned();
            if let Some(entry) = &mut entry {
                entry.url = channel::resolve(url, &entry.url)?;
            }
            Ok::<_, UpdateError>(entry)
        }
        .await;
        let checked = Checked {
            at: now(),
            available: outcome.as_ref().ok().cloned().flatten(),
            error: outcome.as_ref().err().map(ToString::to_string),
        };
        *lock(&self.checked) = Some(checked.clone());
        outcome.map(|_| checked)
    }

    /// Takes the one install slot; `Err` when something else runs.
    fn reserve(&self) -> Result<(), UpdateRefused> {
        if self.kind.is_trial() {
            return Err(UpdateRefused::Busy(
                "this is a trial boot of an update: wait until it is committed".into(),
            ));
        }
        if self
            .busy
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return Err(UpdateRefused::Busy("an update is already running".into()));
        }
        *lock(&self.progress) = Progress {
            phase: "download".into(),
            started: Some(now()),
            ..Progress::default()
        };
        Ok(())
    }

    fn set_progress(&self, phase: &str, done: u64, total: Option<u64>) {
        let mut progress = lock(&self.progress);
        progress.phase = phase.to_owned();
        progress.done = done;
        progress.total = total;
    }

    fn finish(&self, outcome: &Result<Pending, UpdateError>) {
        let mut progress = lock(&self.progress);
        match outcome {
            Ok(p) => {
                progress.phase = "reboot".into();
                progress.message = format!(
                    "{} is in slot {}; restarting into it for a trial",
                    p.to_version, p.to_slot
                );
            }
            Err(e) => {
                progress.phase = "failed".into();
                progress.message = e.to_string();
            }
        }
        drop(progress);
        self.busy.store(false, Ordering::SeqCst);
    }

    /// Downloads (URLs) and installs a bundle; on success the caller reboots. Needs the
    /// reservation taken.
    async fn install_reserved(&self, source: String, force: bool) -> Result<Pending, UpdateError> {
        let path = if source.starts_with("https://") || source.starts_with("http://") {
            let target = self.states.staging(DOWNLOAD_NAME);
            // What a partial download already holds stays; the rest must fit the room left.
            let have = std::fs::metadata(&target).map_or(0, |m| m.len());
            let max = self
                .states
                .room()?
                .saturating_add(have)
                .min(MAX_BUNDLE_BYTES);
            let this = self.clone();
            let fetched = self
                .downloader
                .fetch_to_file(&source, &target, max, &mut |done, total| {
                    this.set_progress("download", done, total)
                })
                .await;
            if let Err(error) = fetched {
                self.record_failure(&source, "download", &error);
                return Err(error);
            }
            target
        } else {
            PathBuf::from(source)
        };
        let this = self.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let keyring = Keyring::load(&this.config.keyring)?;
            let boot_partitions = this
                .config
                .boot_a
                .clone()
                .zip(this.config.boot_b.clone())
                .map(|(a, b)| SlotDevices { a, b });
            let installer = Installer {
                keyring: &keyring,
                facts: &this.facts,
                boot: this.boot.as_ref(),
                slots: &SlotDevices {
                    a: this.config.slot_a.clone(),
                    b: this.config.slot_b.clone(),
                },
                boot_partitions: boot_partitions.as_ref(),
                states: &this.states,
                mounts: PathBuf::from("/proc/self/mounts"),
            };
            installer.install(&path, force, &mut |step, done, total| {
                this.set_progress(step.as_str(), done, total)
            })
        })
        .await
        .map_err(|e| UpdateError::State {
            path: PathBuf::from("install task"),
            reason: e.to_string(),
        })?;
        if outcome.is_ok() {
            // The bundle is in the slot now; its staging copy only takes room.
            let _ = std::fs::remove_file(self.states.staging(DOWNLOAD_NAME));
            let _ = std::fs::remove_file(self.states.staging(UPLOAD_NAME));
        }
        outcome
    }

    /// A failure before the installer ran (the download) goes into the history too.
    fn record_failure(&self, source: &str, step: &str, error: &UpdateError) {
        let entry = percloud_update::state::HistoryEntry {
            at: now(),
            from_version: self.facts.running.to_string(),
            to_version: source.to_owned(),
            outcome: "failed".into(),
            step: Some(step.to_owned()),
            message: error.to_string(),
            logs: Vec::new(),
            trial: false,
        };
        if let Err(e) = self.states.change(|s| s.record(entry)) {
            tracing::error!(error = %e, "recording the update history failed");
        }
    }

    /// Installs and, on success, reboots (after a moment, so the answer gets out).
    pub async fn install_and_reboot(
        &self,
        source: String,
        force: bool,
    ) -> Result<Pending, UpdateError> {
        let outcome = self.install_reserved(source, force).await;
        self.finish(&outcome);
        if outcome.is_ok() {
            let this = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(REBOOT_DELAY).await;
                this.reboot_into_trial();
            });
        }
        outcome
    }

    /// Reboots into the armed trial; if the machine cannot, the trial is dropped again so a
    /// later ordinary reboot does not start a slot nobody is watching for.
    fn reboot_into_trial(&self) {
        tracing::info!(backend = self.boot.name(), "rebooting into the trial");
        if let Err(error) = self.boot.reboot() {
            tracing::error!(%error, "reboot into the trial failed");
            let disarmed = self.boot.disarm(self.running);
            let pending = self.states.change(|s| s.pending.take()).ok().flatten();
            if let Some(p) = pending {
                let entry = percloud_update::state::HistoryEntry {
                    at: now(),
                    from_version: p.from_version,
                    to_version: p.to_version,
                    outcome: "failed".into(),
                    step: Some(Step::Reboot.as_str().into()),
                    message: format!("the update is written but could not be started: {error}"),
                    logs: Vec::new(),
                    trial: false,
                };
                let _ = self.states.change(|s| s.record(entry));
            }
            if let Err(e) = disarmed {
                tracing::error!(error = %e, "dropping the trial failed");
            }
            let mut progress = lock(&self.progress);
            progress.phase = "failed".into();
            progress.message = error.to_string();
        }
    }
}

impl UpdateControl for Updates {
    fn status(&self) -> serde_json::Value {
        self.status_json()
    }

    fn check(&self) -> UpdateFuture<'_, serde_json::Value> {
        Box::pin(async move {
            let checked = Updates::check(self)
                .await
                .map_err(|e| UpdateRefused::Failed(e.to_string()))?;
            Ok(json!(checked))
        })
    }

    fn install_url(&self, url: String, force: bool) -> Result<(), UpdateRefused> {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(UpdateRefused::Invalid("the URL must be http(s)://".into()));
        }
        self.reserve()?;
        spawn_install(self.clone(), url, force);
        Ok(())
    }

    fn upload_target(&self) -> Result<(PathBuf, u64), UpdateRefused> {
        let room = self
            .states
            .room()
            .map_err(|e| UpdateRefused::Failed(e.to_string()))?;
        self.reserve()?;
        Ok((self.states.staging(UPLOAD_NAME), room))
    }

    fn install_uploaded(&self, force: bool) -> Result<(), UpdateRefused> {
        let source = self.states.staging(UPLOAD_NAME).display().to_string();
        spawn_install(self.clone(), source, force);
        Ok(())
    }

    fn upload_failed(&self, reason: String) {
        let mut progress = lock(&self.progress);
        progress.phase = "failed".into();
        progress.message = format!("upload: {reason}");
        drop(progress);
        let _ = std::fs::remove_file(self.states.staging(UPLOAD_NAME));
        self.busy.store(false, Ordering::SeqCst);
    }

    fn reboot(&self) -> Result<(), UpdateRefused> {
        let pending = self.states.load().ok().and_then(|s| s.pending);
        if pending.is_none() {
            return Err(UpdateRefused::Invalid(
                "no update is waiting for a reboot".into(),
            ));
        }
        self.boot
            .reboot()
            .map_err(|e| UpdateRefused::Failed(e.to_string()))
    }
}

impl Updates {
    /// For the control socket: install (a file path or URL), answering when armed.
    pub async fn install_now(&self, source: String, force: bool) -> Result<Pending, String> {
        self.reserve().map_err(|e| match e {
            UpdateRefused::Busy(m) | UpdateRefused::Invalid(m) | UpdateRefused::Failed(m) => m,
        })?;
        self.install_and_reboot(source, force)
            .await
            .map_err(|e| e.to_string())
    }
}

fn spawn_install(this: Updates, source: String, force: bool) {
    tokio::spawn(async move {
        let _ = this.install_and_reboot(source, force).await;
    });
}
