//! What a start means for updates, and the health gate's bookkeeping.
//!
//! At every start the daemon asks [`on_start`]: a pending trial for the running slot means
//! this is the trial boot; a pending trial for the *other* slot means the trial never got
//! healthy and the bootloader came back here, so the failure is recorded ("Update to X
//! failed at `<step>`, running Y again", with the trial's last log lines). Then the daemon
//! runs the gate's checks ([`run_gate`]) and reports the result: [`passed`] commits the
//! running slot (on a normal boot this restores its tries), [`failed`] on a trial records
//! why and drops the trial so the caller's reboot returns to the previous slot.

use std::future::Future;
use std::time::Duration;

use crate::boot::BootControl;
use crate::error::UpdateError;
use crate::install::now;
use crate::slot::Slot;
use crate::state::{HistoryEntry, Pending, StateDir, TRIAL_LOG_LINES, TrialReport};

/// The gate's steps, in order; each must pass before the next is checked.
pub const STEPS: [&str; 4] = [
    "data mounted read-write",
    "store opened",
    "HTTPS answering",
    "mDNS announced",
];

/// The step before the gate: percloud starting (certificates, listeners).
pub const STARTING: &str = "starting percloud";

/// What this start is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootKind {
    /// No update in flight.
    Normal,
    /// The first boot of a freshly installed slot: commit only after the gate.
    Trial(Pending),
    /// The previous attempt failed and the bootloader returned here; it is in the history.
    RolledBack(HistoryEntry),
}

impl BootKind {
    pub fn is_trial(&self) -> bool {
        matches!(self, BootKind::Trial(_))
    }
}

/// Classifies this start and records a failed trial found on the way.
pub fn on_start(
    states: &StateDir,
    running: Slot,
    running_version: &str,
) -> Result<BootKind, UpdateError> {
    let state = states.load()?;
    let Some(pending) = state.pending else {
        return Ok(BootKind::Normal);
    };
    if pending.to_slot == running {
        // init may restart a percloud that stopped during the trial: keep what the earlier
        // start recorded (its failure and log lines) until something newer replaces it.
        let earlier = states
            .trial()
            .ok()
            .flatten()
            .filter(|r| r.attempt == pending.attempt);
        if earlier.is_none() {
            states.save_trial(&TrialReport {
                attempt: pending.attempt.clone(),
                version: pending.to_version.clone(),
                current: Some(STARTING.into()),
                updated_at: now(),
                ..TrialReport::default()
            })?;
        }
        return Ok(BootKind::Trial(pending));
    }
    let report = states
        .trial()
        .ok()
        .flatten()
        .filter(|r| r.attempt == pending.attempt);
    let step = match &report {
        Some(r) => r
            .current
            .clone()
            .unwrap_or_else(|| "the health gate".to_owned()),
        None => "boot (the new system never started percloud)".to_owned(),
    };
    let detail = report
        .as_ref()
        .and_then(|r| r.failure.clone())
        .map(|f| format!(": {f}"))
        .unwrap_or_default();
    let entry = HistoryEntry {
        at: now(),
        from_version: pending.from_version.clone(),
        to_version: pending.to_version.clone(),
        outcome: "failed".into(),
        step: Some(step.clone()),
        message: format!(
            "Update to {} failed at {step}{detail}, running {running_version} again",
            pending.to_version
        ),
        logs: report.map(|r| r.logs).unwrap_or_default(),
        trial: true,
    };
    close_trial(states, &entry)?;
    Ok(BootKind::RolledBack(entry))
}

/// Runs `check` for each of `steps` in order, retrying a failing step every `retry` until
/// it passes or `deadline` is over. `progress` hears of each step as it starts and passes.
pub async fn run_gate<F, Fut>(
    steps: &[&'static str],
    mut check: F,
    deadline: Duration,
    retry: Duration,
    progress: &mut (dyn FnMut(&'static str, bool) + Send),
) -> Result<(), (&'static str, String)>
where
    F: FnMut(&'static str) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let end = tokio::time::Instant::now() + deadline;
    for &step in steps {
        progress(step, false);
        loop {
            let outcome = tokio::time::timeout_at(end, check(step)).await;
            match outcome {
                Ok(Ok(())) => break,
                Ok(Err(reason)) if tokio::time::Instant::now() + retry >= end => {
                    return Err((step, reason));
                }
                Ok(Err(_)) => tokio::time::sleep(retry).await,
                Err(_) => {
                    return Err((step, format!("not done within {} s", deadline.as_secs())));
                }
            }
        }
        progress(step, true);
    }
    Ok(())
}

/// Records a trial's progress (and its latest log lines) on the data partition, so the
/// previous system can tell how far it got if this one never finishes.
pub fn record_progress(
    states: &StateDir,
    kind: &BootKind,
    step: &str,
    passed: bool,
    logs: &[String],
) -> Result<(), UpdateError> {
    let BootKind::Trial(pending) = kind else {
        return Ok(());
    };
    save_report(states, pending, logs, |report| {
        if passed {
            report.passed.push(step.to_owned());
        } else {
            report.current = Some(step.to_owned());
        }
    })
}

/// percloud stopped with `reason` before its gate decided: on a trial boot, record it for
/// the previous system to report (the watchdog, armed since early boot and no longer fed,
/// resets the box into the previous slot).
pub fn record_start_failure(
    states: &StateDir,
    running: Slot,
    reason: &str,
    logs: &[String],
) -> Result<(), UpdateError> {
    let Some(pending) = states.load()?.pending.filter(|p| p.to_slot == running) else {
        return Ok(());
    };
    save_report(states, &pending, logs, |report| {
        if report.current.is_none() {
            report.current = Some(STARTING.into());
        }
        report.failure = Some(reason.to_owned());
    })
}

/// The trial is over with `entry`: it goes into the history, and nothing is pending.
fn close_trial(states: &StateDir, entry: &HistoryEntry) -> Result<(), UpdateError> {
    states.change(|state| {
        state.pending = None;
        state.record(entry.clone());
    })?;
    states.clear_trial()
}

/// Changes the report of `pending`'s trial (a fresh one when the saved report is of another
/// attempt) with `edit` and saves it with the latest `logs`.
fn save_report(
    states: &StateDir,
    pending: &Pending,
    logs: &[String],
    edit: impl FnOnce(&mut TrialReport),
) -> Result<(), UpdateError> {
    let mut report = states
        .trial()?
        .filter(|r| r.attempt == pending.attempt)
        .unwrap_or_else(|| TrialReport {
            attempt: pending.attempt.clone(),
            ..TrialReport::default()
        });
    report.version = pending.to_version.clone();
    edit(&mut report);
    report.logs = tail(logs);
    report.updated_at = now();
    states.save_trial(&report)
}

/// The gate passed: the running slot becomes (or stays) the default with all its tries.
pub fn passed(
    states: &StateDir,
    boot: &dyn BootControl,
    kind: &BootKind,
    running: Slot,
) -> Result<Option<HistoryEntry>, UpdateError> {
    boot.commit(running)?;
    let BootKind::Trial(pending) = kind else {
        return Ok(None);
    };
    let entry = HistoryEntry {
        at: now(),
        from_version: pending.from_version.clone(),
        to_version: pending.to_version.clone(),
        outcome: "committed".into(),
        step: None,
        message: format!(
            "Updated from {} to {}",
            pending.from_version, pending.to_version
        ),
        logs: Vec::new(),
        trial: true,
    };
    close_trial(states, &entry)?;
    Ok(Some(entry))
}

/// The gate failed. On a trial: the failure is recorded for the previous system to report,
/// and only the previous slot may boot; returns true: the caller must reboot now. On a
/// normal boot nothing changes (the watchdog and the bootloader's tries handle a box that
/// never gets healthy).
pub fn failed(
    states: &StateDir,
    boot: &dyn BootControl,
    kind: &BootKind,
    step: &str,
    reason: &str,
    logs: &[String],
) -> Result<bool, UpdateError> {
    let BootKind::Trial(pending) = kind else {
        return Ok(false);
    };
    let mut report = states
        .trial()?
        .filter(|r| r.attempt == pending.attempt)
        .unwrap_or_default();
    report.attempt = pending.attempt.clone();
    report.version = pending.to_version.clone();
    report.current = Some(step.to_owned());
    report.failure = Some(reason.to_owned());
    report.logs = tail(logs);
    report.updated_at = now();
    states.save_trial(&report)?;
    boot.disarm(pending.from_slot)?;
    Ok(true)
}

fn tail(logs: &[String]) -> Vec<String> {
    logs[logs.len().saturating_sub(TRIAL_LOG_LINES)..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::fake::{FakeBoot, FakeState};

    fn setup() -> (tempfile::TempDir, StateDir, FakeBoot) {
        let dir = tempfile::tempdir().expect("tempdir");
        let states = StateDir::new(dir.path());
        let boot = FakeBoot {
            path: dir.path().join("fake-boot.json"),
        };
        (dir, states, boot)
    }

    fn arm(states: &StateDir, boot: &FakeBoot) {
        boot.disarm(Slot::A).expect("disarm");
        boot.arm_trial(Slot::B).expect("arm");
        states
            .change(|s| {
                s.pending = Some(Pending {
                    attempt: "1".into(),
                    from_version: "0.1.0".into(),
                    to_version: "0.2.0".into(),
                    from_slot: Slot::A,
                    to_slot: Slot::B,
                    armed_at: 0,
                })
            })
            .expect("pending");
    }

    fn reboot(boot: &FakeBoot) -> FakeState {
        let mut state = boot.load().expect("load");
        state.boot_next();
        boot.save(&state).expect("save");
        state
    }

    #[tokio::test]
    async fn a_healthy_trial_commits_the_new_slot() {
        let (_dir, states, boot) = setup();
        arm(&states, &boot);
        assert_eq!(reboot(&boot).booted, Slot::B);
        let kind = on_start(&states, Slot::B, "0.2.0").expect("start");
        assert!(kind.is_trial());
        let mut seen = Vec::new();
        run_gate(
            &STEPS,
            |_| async { Ok(()) },
            Duration::from_secs(5),
            Duration::from_millis(10),
            &mut |step, ok| {
                seen.push((step, ok));
            },
        )
        .await
        .expect("healthy");
        assert_eq!(seen.len(), 8);
        let entry = passed(&states, &boot, &kind, Slot::B)
            .expect("commit")
            .expect("entry");
        assert_eq!(entry.message, "Updated from 0.1.0 to 0.2.0");
        let fake = boot.load().expect("load");
        assert_eq!(
            (fake.default, fake.trial, fake.fallback),
            (Slot::B, None, true)
        );
        assert_eq!(states.load().expect("state").pending, None);
        assert_eq!(reboot(&boot).booted, Slot::B, "stays on the new slot");
        assert_eq!(
            on_start(&states, Slot::B, "0.2.0").expect("start"),
            BootKind::Normal
        );
    }

    #[tokio::test]
    async fn a_failed_gate_returns_to_the_old_slot_which_reports_it() {
        let (_dir, states, boot) = setup();
        arm(&states, &boot);
        reboot(&boot);
        let kind = on_start(&states, Slot::B, "0.2.0").expect("start");
        let logs: Vec<String> = (0..100).map(|i| format!("line {i}")).collect();
        let outcome = run_gate(
            &STEPS,
            |step| {
                let logs = &logs;
                let states = &states;
                let kind = &kind;
                async move {
                    record_progress(states, kind, step, false, logs).map_err(|e| e.to_string())?;
                    if step == "HTTPS answering" {
                        Err("connection refused".to_owned())
                    } else {
                        Ok(())
                    }
                }
            },
            Duration::from_millis(300),
            Duration::from_millis(50),
            &mut |_, _| {},
        )
        .await;
        let (step, reason) = outcome.expect_err("unhealthy");
        assert_eq!(step, "HTTPS answering");
        assert!(failed(&states, &boot, &kind, step, &reason, &logs).expect("record"));
        assert_eq!(reboot(&boot).booted, Slot::A, "back on the old slot");
        let kind = on_start(&states, Slot::A, "0.1.0").expect("start");
        let BootKind::RolledBack(entry) = kind else {
            panic!("expected a rollback, got {kind:?}");
        };
        assert_eq!(
            entry.message,
            "Update to 0.2.0 failed at HTTPS answering: connection refused, running 0.1.0 again"
        );
        assert_eq!(entry.logs.len(), TRIAL_LOG_LINES);
        assert_eq!(entry.logs.last().map(String::as_str), Some("line 99"));
        assert_eq!(states.load().expect("state").pending, None);
        passed(&states, &boot, &BootKind::Normal, Slot::A).expect("normal gate");
        assert_eq!(boot.load().expect("load").default, Slot::A);
    }

    #[test]
    fn a_trial_whose_percloud_cannot_start_is_reported_with_its_error() {
        let (_dir, states, boot) = setup();
        arm(&states, &boot);
        reboot(&boot);
        assert!(
            on_start(&states, Slot::B, "0.2.0")
                .expect("start")
                .is_trial()
        );
        let logs = vec!["ERROR cannot bind 192.0.2.1:443".to_owned()];
        record_start_failure(&states, Slot::B, "binding 192.0.2.1:443: refused", &logs)
            .expect("record");
        // init starts it again; the record stays.
        assert!(
            on_start(&states, Slot::B, "0.2.0")
                .expect("start")
                .is_trial()
        );
        // The watchdog resets the box; the bootloader returns to A.
        reboot(&boot);
        let BootKind::RolledBack(entry) = on_start(&states, Slot::A, "0.1.0").expect("start")
        else {
            panic!("expected a rollback");
        };
        assert_eq!(
            entry.message,
            "Update to 0.2.0 failed at starting percloud: binding 192.0.2.1:443: refused, running 0.1.0 again"
        );
        assert_eq!(entry.logs, logs);
        // Not a trial: nothing is recorded.
        record_start_failure(&states, Slot::A, "x", &[]).expect("no-op");
        assert_eq!(states.trial().expect("read"), None);
    }

    #[test]
    fn a_trial_that_never_started_is_reported_as_such() {
        let (_dir, states, boot) = setup();
        arm(&states, &boot);
        // The new system hung before percloud ran; the bootloader fell back to A.
        let kind = on_start(&states, Slot::A, "0.1.0").expect("start");
        let BootKind::RolledBack(entry) = kind else {
            panic!("expected a rollback");
        };
        assert!(
            entry.message.starts_with(
                "Update to 0.2.0 failed at boot (the new system never started percloud)"
            ),
            "{}",
            entry.message
        );
    }
}
