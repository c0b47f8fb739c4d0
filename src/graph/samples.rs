//! [`SampleStore`]: the latest samples of every sidecar, shared between the
//! scraper that writes them and whoever reads them (`/debug/graph`,
//! `trellis graph`, the staged rollout's comparison).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use super::{rates, ProxySample, SampleRates};

/// The shared handle to the scraped samples; cheap to clone.
///
/// Per sidecar it keeps the latest sample and a few checkpoints, one at
/// least a quarter of the window after the previous, none older than the
/// window before the latest: memory stays a handful of samples per sidecar
/// whatever the scrape interval, and [`SampleStore::window_of`] always has
/// a pair spanning three quarters to all of the window once the sidecar
/// has been scraped that long.
///
/// Reading: [`latest`](SampleStore::latest) (every sidecar's newest
/// sample), [`latest_of`](SampleStore::latest_of) (one sidecar's),
/// [`window_of`](SampleStore::window_of) (its oldest and newest sample in
/// the window) and [`rates_of`](SampleStore::rates_of) (those two
/// differenced with [`rates`]).
#[derive(Clone)]
pub struct SampleStore {
    inner: Arc<RwLock<Inner>>,
    window: Duration,
}

#[derive(Default)]
struct Inner {
    proxies: BTreeMap<String, History>,
}

struct History {
    checkpoints: VecDeque<Arc<ProxySample>>,
    latest: Arc<ProxySample>,
    /// Why the last scrape failed, if it did (cleared by the next success).
    last_error: Option<String>,
}

impl SampleStore {
    /// An empty store whose graph covers `window`.
    pub fn new(window: Duration) -> Self {
        SampleStore {
            inner: Arc::default(),
            window,
        }
    }

    /// The window rates are computed over.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Records a successful scrape.
    pub fn record(&self, sample: ProxySample) {
        let sample = Arc::new(sample);
        let step = self.window / 4;
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let history = (inner.proxies)
            .entry(sample.proxy.clone())
            .or_insert_with(|| History {
                checkpoints: VecDeque::new(),
                latest: Arc::clone(&sample),
                last_error: None,
            });
        let due = (history.checkpoints.back()).is_none_or(|last| age(last, &sample) >= step);
        if due {
            history.checkpoints.push_back(Arc::clone(&sample));
        }
        while (history.checkpoints.front()).is_some_and(|first| age(first, &sample) > self.window) {
            history.checkpoints.pop_front();
        }
        history.latest = sample;
        history.last_error = None;
    }

    /// Records a failed scrape of a sidecar (its samples stay).
    pub fn record_error(&self, proxy: &str, error: String) {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(history) = inner.proxies.get_mut(proxy) {
            history.last_error = Some(error);
        } else {
            // Never scraped: remember the error with an empty sample, so
            // that the failure shows.
            let empty = Arc::new(ProxySample {
                proxy: proxy.to_string(),
                service: None,
                at: SystemTime::UNIX_EPOCH,
                outbound: BTreeMap::new(),
            });
            let history = History {
                checkpoints: VecDeque::new(),
                latest: empty,
                last_error: Some(error),
            };
            inner.proxies.insert(proxy.to_string(), history);
        }
    }

    /// Forgets the sidecars `keep` says no to (deregistered ones).
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        inner.proxies.retain(|id, _| keep(id));
    }

    /// Every scraped sidecar's newest sample, by node id.
    pub fn latest(&self) -> BTreeMap<String, Arc<ProxySample>> {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        (inner.proxies.iter())
            .filter(|(_, h)| !h.checkpoints.is_empty())
            .map(|(id, h)| (id.clone(), Arc::clone(&h.latest)))
            .collect()
    }

    /// One sidecar's newest sample.
    pub fn latest_of(&self, proxy: &str) -> Option<Arc<ProxySample>> {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let h = inner.proxies.get(proxy)?;
        (!h.checkpoints.is_empty()).then(|| Arc::clone(&h.latest))
    }

    /// One sidecar's oldest sample in the window and its newest, when they
    /// differ.
    pub fn window_of(&self, proxy: &str) -> Option<(Arc<ProxySample>, Arc<ProxySample>)> {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let h = inner.proxies.get(proxy)?;
        let first = h.checkpoints.front()?;
        (!Arc::ptr_eq(first, &h.latest)).then(|| (Arc::clone(first), Arc::clone(&h.latest)))
    }

    /// One sidecar's rates over the window ([`SampleStore::window_of`]
    /// differenced).
    pub fn rates_of(&self, proxy: &str) -> Option<SampleRates> {
        self.window_of(proxy).map(|(old, new)| rates(&old, &new))
    }

    /// Every sidecar's rates over the window, leaving out those whose
    /// newest sample is older than the window (no longer scraped).
    pub fn rates_all(&self, now: SystemTime) -> Vec<SampleRates> {
        let ids: Vec<String> = {
            let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
            inner.proxies.keys().cloned().collect()
        };
        (ids.iter())
            .filter_map(|id| self.window_of(id))
            .filter(|(_, new)| now.duration_since(new.at).unwrap_or_default() <= self.window)
            .map(|(old, new)| rates(&old, &new))
            .collect()
    }

    /// The sidecars whose last scrape failed, with why.
    pub fn failures(&self) -> BTreeMap<String, String> {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        (inner.proxies.iter())
            .filter_map(|(id, h)| Some((id.clone(), h.last_error.clone()?)))
            .collect()
    }
}

fn age(older: &ProxySample, newer: &ProxySample) -> Duration {
    newer.at.duration_since(older.at).unwrap_or_default()
}
