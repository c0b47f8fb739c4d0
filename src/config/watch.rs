//! Watching the config directory for changes.
//!
//! The whole directory is watched recursively (not single files): editors
//! replace files by write-and-rename and `git checkout` removes and creates
//! them, which a per-file watch would lose. Only create, modify and remove
//! events (renames are modify events) of config files or directories
//! count; access events never do, since reading the config ourselves
//! produces them and would reload forever.
//!
//! Delivery is leading-edge: a config file renamed into place (an atomic
//! replace: editors, `git checkout`, `mv`) is sent at once, since its
//! content is complete when the name appears. Any other event is sent after
//! a tiny settle (until 10 ms pass without an event, at most 30 ms): a
//! write in place truncates and then fills the file, and the settle lets it
//! finish before the reload reads it, so a half-written (e.g. empty, hence
//! valid but empty) file is rarely loaded. Later events of a burst coalesce
//! in a channel of capacity 1 until the receiver takes it; a receiver that
//! reloads after each `()` always sees the final state of a burst anyway.

use std::path::{Component, Path, PathBuf};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use notify::event::{ModifyKind, RenameMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// Why the directory cannot be watched.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch {}: {source}", path.display())]
pub struct WatchError {
    /// The directory.
    pub path: PathBuf,
    /// notify's error.
    #[source]
    pub source: notify::Error,
}

/// Keeps the watch alive; dropping it stops watching (the receiver then
/// ends).
pub struct ConfigWatcher {
    _watcher: RecommendedWatcher,
}

impl std::fmt::Debug for ConfigWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConfigWatcher")
    }
}

/// Watches `dir`; the receiver gets a `()` soon after any relevant change.
pub fn watch(dir: &Path) -> Result<(ConfigWatcher, mpsc::Receiver<()>), WatchError> {
    let err = |source| WatchError {
        path: dir.to_path_buf(),
        source,
    };
    let (tx, rx) = mpsc::channel(1);
    let (raw_tx, raw_rx) = std::sync::mpsc::channel::<Change>();
    let root = dir.to_path_buf();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<Event>| {
        let change = match res {
            Ok(event) => classify(&root, &event),
            Err(e) => {
                // A lost event (e.g. queue overflow) may hide a change: reload.
                tracing::warn!(error = %e, "config watch error");
                Some(Change::Settle)
            }
        };
        if let Some(change) = change {
            let _ = raw_tx.send(change);
        }
    })
    .map_err(err)?;
    watcher.watch(dir, RecursiveMode::Recursive).map_err(err)?;
    // Ends when the watcher (and with it `raw_tx`) is dropped.
    std::thread::Builder::new()
        .name("config-watch".into())
        .spawn(move || settle_and_forward(&raw_rx, &tx))
        .map_err(|e| err(notify::Error::io(e)))?;
    Ok((ConfigWatcher { _watcher: watcher }, rx))
}

/// Quiet time that ends a settle, and the longest settle.
const QUIET: Duration = Duration::from_millis(10);
const MAX_SETTLE: Duration = Duration::from_millis(30);

/// How soon a relevant event may be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    /// A config file renamed into place: complete, read it now.
    Complete,
    /// Anything else: the file may still be being written.
    Settle,
}

fn settle_and_forward(raw: &std::sync::mpsc::Receiver<Change>, tx: &mpsc::Sender<()>) {
    while let Ok(change) = raw.recv() {
        if change == Change::Complete {
            // Full channel: a reload is already pending and will see this change.
            let _ = tx.try_send(());
            continue;
        }
        let deadline = Instant::now() + MAX_SETTLE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match raw.recv_timeout(left.min(QUIET)) {
                Ok(_) if !left.is_zero() => continue,
                Err(RecvTimeoutError::Disconnected) => return,
                _ => break,
            }
        }
        // Full channel: a reload is already pending and will see this change.
        let _ = tx.try_send(());
    }
}

/// Whether `event` calls for a reload, and how soon.
fn classify(root: &Path, event: &Event) -> Option<Change> {
    // inotify reports every rename's paths as `From` (old) and `To` (new)
    // first, and a paired rename once more as `Both`: counting `Both` too
    // reloaded one edit twice whenever the reload had taken the first
    // signal before the second arrived.
    let paired = matches!(
        event.kind,
        EventKind::Modify(ModifyKind::Name(RenameMode::Both))
    );
    if (paired && cfg!(target_os = "linux")) || !is_relevant(root, event) {
        return None;
    }
    // inotify reports a rename as `From`, `To` and `Both` (old, new path).
    let renamed_to = matches!(
        event.kind,
        EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both))
    );
    let target = event.paths.last();
    let complete = renamed_to
        && !event.need_rescan()
        && target.is_some_and(|p| is_relevant_path(root, p) && super::is_config_file(p));
    Some(if complete {
        Change::Complete
    } else {
        Change::Settle
    })
}

fn is_relevant(root: &Path, event: &Event) -> bool {
    if event.need_rescan() {
        return true;
    }
    let kind_counts = matches!(
        event.kind,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) | EventKind::Any
    );
    kind_counts && event.paths.iter().any(|p| is_relevant_path(root, p))
}

/// Config files, and directories (or things that may have been one: a
/// removed path has no metadata, so anything without an extension counts).
/// Hidden paths (`.git`, editor swap files) never count.
fn is_relevant_path(root: &Path, path: &Path) -> bool {
    // Outside `root` (a path spelled differently), only the name can tell.
    let rel = match path.strip_prefix(root) {
        Ok(rel) => rel,
        Err(_) => path.file_name().map(Path::new).unwrap_or(path),
    };
    let hidden = rel.components().any(|c| match c {
        Component::Normal(s) => s.to_str().is_some_and(|s| s.starts_with('.')),
        _ => false,
    });
    if hidden {
        return false;
    }
    super::is_config_file(path) || path.is_dir() || path.extension().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn expect_event(rx: &mut mpsc::Receiver<()>, what: &str) {
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert!(matches!(got, Ok(Some(()))), "no event for {what}");
    }

    /// Waits until no event came for 200 ms (the tail of a burst).
    async fn drain(rx: &mut mpsc::Receiver<()>) {
        while let Ok(Some(())) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
        }
    }

    #[tokio::test]
    async fn sees_writes_renames_new_dirs_and_removals_but_not_reads() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let file = root.join("a.yaml");
        std::fs::write(&file, "a: 1\n").unwrap();
        let (watcher, mut rx) = watch(&root).unwrap();

        let _ = std::fs::read_to_string(&file).unwrap();
        let quiet = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await;
        assert!(quiet.is_err(), "reading a file must not trigger a reload");

        std::fs::write(&file, "a: 2\n").unwrap();
        expect_event(&mut rx, "write in place").await;
        drain(&mut rx).await;

        let tmp = root.join(".a.yaml.tmp");
        std::fs::write(&tmp, "a: 3\n").unwrap();
        std::fs::rename(&tmp, &file).unwrap();
        expect_event(&mut rx, "atomic rename").await;
        let again = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await;
        assert!(again.is_err(), "one rename, one reload");

        std::fs::create_dir(root.join("sub")).unwrap();
        expect_event(&mut rx, "new directory").await;
        drain(&mut rx).await;
        std::fs::write(root.join("sub/b.yml"), "b: 1\n").unwrap();
        expect_event(&mut rx, "new file in subfolder").await;
        drain(&mut rx).await;

        std::fs::remove_file(&file).unwrap();
        expect_event(&mut rx, "delete").await;
        drain(&mut rx).await;

        drop(watcher);
        let end = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert_eq!(end, Ok(None), "dropping the watcher ends the receiver");
    }

    fn event(kind: EventKind, paths: &[&str]) -> Event {
        let mut e = Event::new(kind);
        e.paths = paths.iter().map(PathBuf::from).collect();
        e
    }

    #[test]
    fn only_a_config_file_renamed_into_place_skips_the_settle() {
        use notify::event::{CreateKind, DataChange};
        let root = Path::new("/cfg");
        let rename = |mode| EventKind::Modify(ModifyKind::Name(mode));
        let to = event(rename(RenameMode::To), &["/cfg/a.yaml"]);
        let both = event(rename(RenameMode::Both), &["/cfg/.a.tmp", "/cfg/a.yaml"]);
        assert_eq!(classify(root, &to), Some(Change::Complete));
        assert_eq!(classify(root, &both), None, "the `To` event said it");
        let write = EventKind::Modify(ModifyKind::Data(DataChange::Any));
        let settles = [
            event(write, &["/cfg/a.yaml"]),
            event(EventKind::Create(CreateKind::File), &["/cfg/a.yaml"]),
            event(rename(RenameMode::From), &["/cfg/a.yaml"]),
            // A directory renamed into place: its files are not known yet.
            event(rename(RenameMode::To), &["/cfg/sub"]),
        ];
        for e in &settles {
            assert_eq!(classify(root, e), Some(Change::Settle), "{e:?}");
        }
        let hidden = event(rename(RenameMode::To), &["/cfg/.a.yaml"]);
        assert_eq!(classify(root, &hidden), None);
    }

    /// A complete change is forwarded without waiting for quiet: even when
    /// the watcher ends right after it, which a settling change never
    /// survives.
    #[test]
    fn a_complete_change_is_forwarded_without_a_settle() {
        for (change, forwarded) in [(Change::Complete, true), (Change::Settle, false)] {
            let (raw_tx, raw_rx) = std::sync::mpsc::channel();
            let (tx, mut rx) = mpsc::channel(1);
            raw_tx.send(change).unwrap();
            drop(raw_tx);
            settle_and_forward(&raw_rx, &tx);
            assert_eq!(rx.try_recv().is_ok(), forwarded, "{change:?}");
        }
    }

    #[test]
    fn paths_that_count() {
        let root = Path::new("/cfg");
        assert!(is_relevant_path(root, Path::new("/cfg/a.yaml")));
        assert!(is_relevant_path(root, Path::new("/cfg/sub/b.yml")));
        assert!(is_relevant_path(root, Path::new("/cfg/gone-dir")));
        assert!(!is_relevant_path(root, Path::new("/cfg/.git/index")));
        assert!(!is_relevant_path(root, Path::new("/cfg/.a.yaml.swp")));
        assert!(!is_relevant_path(root, Path::new("/cfg/notes.txt")));
        // A config dir inside a hidden dir (temp dirs are `.tmpXXXX`).
        let root = Path::new("/tmp/.tmp123/cfg");
        assert!(is_relevant_path(root, Path::new("/tmp/.tmp123/cfg/a.yaml")));
        assert!(is_relevant_path(
            root,
            Path::new("/elsewhere/.tmp123/cfg/a.yaml")
        ));
    }
}
