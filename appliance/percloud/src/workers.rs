//! Long-lived tasks as named workers under one cancellation token, with a bounded drain.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// The daemon's workers. A worker that ends on its own (or panics) stops the daemon, so the
/// supervisor above (init, the watchdog) restarts it cleanly.
#[derive(Debug, Default)]
pub struct Workers {
    tasks: JoinSet<&'static str>,
    shutdown: CancellationToken,
}

impl Workers {
    pub fn token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    pub fn spawn<F>(&mut self, name: &'static str, work: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        tracing::debug!(worker = name, "starting");
        self.tasks.spawn(async move {
            work.await;
            name
        });
    }

    /// Waits until a worker ends or `stop` resolves, then cancels everything and waits at most
    /// `deadline` for the rest. Returns the worker that ended first, if one did.
    pub async fn run_until(
        mut self,
        stop: impl Future<Output = ()>,
        deadline: Duration,
    ) -> Option<String> {
        let early = tokio::select! {
            () = stop => None,
            ended = self.tasks.join_next() => Some(match ended {
                Some(Ok(name)) => format!("worker {name} stopped unexpectedly"),
                Some(Err(e)) => format!("a worker failed: {e}"),
                None => "no workers".to_owned(),
            }),
        };
        self.shutdown.cancel();
        let drain = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(deadline, drain).await.is_err() {
            tracing::warn!("workers did not stop within {deadline:?}; exiting anyway");
        }
        early
    }
}
