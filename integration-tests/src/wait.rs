//! Polling instead of fixed sleeps.

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `condition` every `poll` until it returns `Some`, or fails after
/// `timeout`. Returns the value and the time it took.
pub async fn wait_until<T, F, Fut>(
    timeout: Duration,
    poll: Duration,
    mut condition: F,
) -> anyhow::Result<(T, Duration)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = condition().await {
            return Ok((v, start.elapsed()));
        }
        if start.elapsed() >= timeout {
            anyhow::bail!("condition not met within {timeout:?}");
        }
        tokio::time::sleep(poll).await;
    }
}

/// Like [`wait_until`] for a boolean condition.
pub async fn wait_for<F, Fut>(
    timeout: Duration,
    poll: Duration,
    mut condition: F,
) -> anyhow::Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let (_, took) = wait_until(timeout, poll, || {
        let fut = condition();
        async move { fut.await.then_some(()) }
    })
    .await?;
    Ok(took)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn returns_once_condition_holds() {
        let n = AtomicU32::new(0);
        let (v, _) = wait_until(Duration::from_secs(2), Duration::from_millis(1), || {
            let i = n.fetch_add(1, Ordering::SeqCst);
            async move { (i >= 3).then_some(i) }
        })
        .await
        .unwrap();
        assert_eq!(v, 3);
    }

    #[tokio::test]
    async fn times_out() {
        let r = wait_for(
            Duration::from_millis(20),
            Duration::from_millis(5),
            || async { false },
        )
        .await;
        assert!(r.is_err());
    }
}
