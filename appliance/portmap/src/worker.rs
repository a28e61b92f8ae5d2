//! The `portmap` worker: runs the [`Mapper`] while remote access is on, publishes its status,
//! and removes the mapping when turned off or at shutdown.

use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::Status;
use crate::mapper::Mapper;
use crate::router::Discovery;

/// How long removing the mapping may take at shutdown.
const RELEASE_DEADLINE: Duration = Duration::from_secs(5);

/// Runs until `shutdown`: maps while `enabled` holds true, publishing every change on `status`.
pub async fn run<D: Discovery>(
    mut mapper: Mapper<D>,
    mut enabled: watch::Receiver<bool>,
    status: watch::Sender<Status>,
    shutdown: CancellationToken,
) where
    D::Router: std::fmt::Debug,
{
    loop {
        let on = *enabled.borrow_and_update();
        let delay = if on {
            let step = mapper.step();
            tokio::select! {
                () = shutdown.cancelled() => break,
                delay = step => delay,
            }
        } else {
            mapper.release().await;
            Duration::MAX
        };
        status.send_replace(mapper.status().clone());
        tokio::select! {
            () = shutdown.cancelled() => break,
            changed = enabled.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            () = sleep(delay) => {}
        }
    }
    if tokio::time::timeout(RELEASE_DEADLINE, mapper.release())
        .await
        .is_err()
    {
        tracing::warn!("removing the port mapping at shutdown timed out");
    }
    status.send_replace(mapper.status().clone());
}

async fn sleep(delay: Duration) {
    if delay == Duration::MAX {
        std::future::pending::<()>().await;
    } else {
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::Fake;
    use crate::{MapperConfig, State};

    #[tokio::test(start_paused = true)]
    async fn maps_when_enabled_removes_when_disabled_and_at_shutdown() {
        let fake = Fake::new();
        let mapper = Mapper::new(fake.clone(), MapperConfig::new(8443));
        let (enable, enabled) = watch::channel(true);
        let (status_tx, mut status) = watch::channel(Status::disabled());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(mapper, enabled, status_tx, shutdown.clone()));

        status
            .wait_for(|s| s.state == State::Mapped)
            .await
            .expect("mapped");
        assert_eq!(fake.with(|s| s.table.len()), 1);
        enable.send_replace(false);
        status
            .wait_for(|s| s.state == State::Disabled)
            .await
            .expect("disabled");
        assert!(fake.with(|s| s.table.is_empty()));
        enable.send_replace(true);
        status
            .wait_for(|s| s.state == State::Mapped)
            .await
            .expect("mapped again");
        shutdown.cancel();
        task.await.expect("worker ends");
        assert!(fake.with(|s| s.table.is_empty()), "removed at shutdown");
    }
}
