//! The rollout as replicas share it in etcd (`PREFIX/v1/rollout/state`):
//! the state `persist` keeps in `state.json` plus the files of the good
//! generation and of the one baking, and the pure steps that replace it.
//! Generations are named by the hash of their files, so replicas that read
//! the same directory agree on which one is baking; their numbers come from
//! the record, not from any replica's reload count.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::persist::{ms, Saved, SavedBake, SavedGeneration};
use super::state::{unix, Ended, HISTORY};

/// A config's files (relative path, text).
pub(crate) type Files = Vec<(PathBuf, String)>;

/// The stored record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    #[serde(flatten)]
    pub(crate) saved: Saved,
    /// The files of the good generation and of the one baking, by hash:
    /// a replica whose directory holds neither (it restarted after another
    /// edit, or has not seen the edit yet) still serves both.
    pub(crate) files: BTreeMap<String, Files>,
}

/// A config a replica loaded from its directory, as the driver proposes it.
#[derive(Debug, Clone)]
pub(crate) struct Offer {
    pub(crate) hash: String,
    pub(crate) files: Arc<Files>,
    /// The policy's bake time; `None` without a policy (everyone at once).
    pub(crate) bake: Option<Duration>,
}

impl Record {
    /// The record as JSON (what the store compares and replaces).
    pub(crate) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The record of a stored value.
    pub(crate) fn decode(raw: &[u8]) -> Result<Record, serde_json::Error> {
        serde_json::from_slice(raw)
    }

    /// The record once `offer` is the newest config, or `None` when it
    /// changes nothing: its files are the good or the baking generation's,
    /// or those of the generation that failed last (a replica that reads
    /// the failed edit late, or takes over the drive, must not roll it out
    /// again; the next edit does).
    pub(crate) fn propose(&self, offer: &Offer, now: SystemTime) -> Option<Record> {
        let s = &self.saved;
        let known = |h: Option<&String>| h == Some(&offer.hash);
        let failed_last = s.history.first().filter(|e| e.outcome == "failed");
        if known(s.good.as_ref().map(|g| &g.hash))
            || known(s.current.as_ref().map(|c| &c.hash))
            || known(failed_last.and_then(|e| e.hash.as_ref()))
        {
            return None;
        }
        let mut next = self.clone();
        let number = s.last_generation + 1;
        next.saved.last_generation = number;
        if let Some(old) = next.saved.current.take() {
            let why = format!("generation {number} replaced it");
            next.end(old.generation, &old.hash, "superseded", Some(why), now);
        }
        match (offer.bake, &s.good) {
            (Some(bake), Some(_)) => {
                next.saved.current = Some(SavedBake {
                    generation: number,
                    hash: offer.hash.clone(),
                    started_at_ms: ms(now),
                    bake_ends_at_ms: ms(now + bake),
                });
            }
            _ => {
                next.saved.good = Some(SavedGeneration {
                    generation: number,
                    hash: offer.hash.clone(),
                });
                next.end(number, &offer.hash, "applied", None, now);
            }
        }
        next.files.insert(offer.hash.clone(), offer.files.to_vec());
        next.keep_live_files();
        Some(next)
    }

    /// Everyone gets the baking generation: it is the good one now.
    pub(crate) fn promote(&self, why: &str, now: SystemTime) -> Result<(Record, u64), String> {
        let mut next = self.clone();
        let c = next.saved.current.take().ok_or("no rollout in progress")?;
        next.saved.good = Some(SavedGeneration {
            generation: c.generation,
            hash: c.hash.clone(),
        });
        next.end(c.generation, &c.hash, "promoted", Some(why.into()), now);
        next.keep_live_files();
        Ok((next, c.generation))
    }

    /// The canary returns to the good generation; the baking one failed.
    pub(crate) fn abort(&self, why: &str, now: SystemTime) -> Result<(Record, u64), String> {
        let mut next = self.clone();
        let c = next.saved.current.take().ok_or("no rollout in progress")?;
        next.end(c.generation, &c.hash, "failed", Some(why.into()), now);
        next.keep_live_files();
        Ok((next, c.generation))
    }

    /// The hash of the generation baking, if one is.
    pub(crate) fn baking(&self) -> Option<&str> {
        self.saved.current.as_ref().map(|c| c.hash.as_str())
    }

    fn end(
        &mut self,
        generation: u64,
        hash: &str,
        outcome: &str,
        reason: Option<String>,
        now: SystemTime,
    ) {
        self.saved.history.insert(
            0,
            Ended {
                generation,
                outcome: outcome.into(),
                reason,
                at: unix(now),
                hash: Some(hash.into()),
            },
        );
        self.saved.history.truncate(HISTORY);
    }

    /// Drops the files of generations no replica serves any more.
    fn keep_live_files(&mut self) {
        let s = &self.saved;
        let live = [
            s.good.as_ref().map(|g| &g.hash),
            s.current.as_ref().map(|c| &c.hash),
        ];
        self.files.retain(|hash, _| live.contains(&Some(hash)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(hash: &str, bake: Option<u64>) -> Offer {
        Offer {
            hash: hash.into(),
            files: Arc::new(vec![(PathBuf::from("a.yaml"), format!("{hash}\n"))]),
            bake: bake.map(Duration::from_secs),
        }
    }

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    fn outcomes(r: &Record) -> Vec<(u64, String)> {
        let h = &r.saved.history;
        h.iter()
            .map(|e| (e.generation, e.outcome.clone()))
            .collect()
    }

    #[test]
    fn the_first_config_is_good_then_edits_bake_and_end() {
        let r = Record::default()
            .propose(&offer("h1", Some(60)), at(10))
            .unwrap();
        assert_eq!(r.saved.good.as_ref().unwrap().hash, "h1");
        assert_eq!(r.baking(), None);
        let r = r.propose(&offer("h2", Some(60)), at(20)).unwrap();
        let c = r.saved.current.clone().unwrap();
        assert_eq!((c.generation, c.hash.as_str()), (2, "h2"));
        assert_eq!((c.started_at_ms, c.bake_ends_at_ms), (20_000, 80_000));
        assert_eq!(r.files.keys().collect::<Vec<_>>(), ["h1", "h2"]);
        // The same files again (another replica, a second event): nothing.
        assert!(r.propose(&offer("h2", Some(60)), at(21)).is_none());
        assert!(r.propose(&offer("h1", Some(60)), at(21)).is_none());
        let (done, n) = r.promote("bake time over", at(80)).unwrap();
        assert_eq!(n, 2);
        assert_eq!(done.saved.good.as_ref().unwrap().hash, "h2");
        assert_eq!(done.files.keys().collect::<Vec<_>>(), ["h2"]);
        assert!(done.promote("again", at(81)).is_err(), "nothing baking");
        let (failed, _) = r.abort("canary NACK", at(30)).unwrap();
        assert_eq!(failed.saved.good.as_ref().unwrap().hash, "h1");
        assert_eq!(failed.files.keys().collect::<Vec<_>>(), ["h1"]);
        assert_eq!(
            outcomes(&failed),
            [(2, "failed".into()), (1, "applied".into())]
        );
    }

    #[test]
    fn the_failed_files_do_not_roll_out_again_but_an_edit_or_a_revert_does() {
        let r = Record::default()
            .propose(&offer("h1", Some(60)), at(1))
            .unwrap();
        let r = r.propose(&offer("h2", Some(60)), at(2)).unwrap();
        let (r, _) = r.abort("nack", at(3)).unwrap();
        assert!(r.propose(&offer("h2", Some(60)), at(4)).is_none());
        let r3 = r.propose(&offer("h3", Some(60)), at(4)).unwrap();
        assert_eq!(r3.baking(), Some("h3"));
        assert_eq!(r3.saved.current.as_ref().unwrap().generation, 3);
        // An edit during the bake supersedes it, and a revert to the
        // superseded files is an edit too.
        let r4 = r3.propose(&offer("h4", Some(60)), at(5)).unwrap();
        assert_eq!(outcomes(&r4)[0], (3, "superseded".into()));
        assert_eq!(r4.files.keys().collect::<Vec<_>>(), ["h1", "h4"]);
        let r5 = r4.propose(&offer("h3", Some(60)), at(6)).unwrap();
        assert_eq!(r5.saved.current.as_ref().unwrap().generation, 5);
        // Without a policy a config reaches everyone at once.
        let all = r5.propose(&offer("h6", None), at(7)).unwrap();
        assert_eq!(all.baking(), None);
        assert_eq!(all.saved.good.as_ref().unwrap().generation, 6);
    }

    #[test]
    fn the_record_round_trips_and_keeps_state_json_field_names() {
        let r = Record::default()
            .propose(&offer("h1", Some(60)), at(1))
            .unwrap();
        let r = r.propose(&offer("h2", Some(60)), at(2)).unwrap();
        let raw = r.encode();
        assert_eq!(Record::decode(&raw).unwrap(), r);
        let json: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(json["last_generation"], 2);
        assert_eq!(json["current"]["hash"], "h2");
        assert_eq!(json["files"]["h1"][0][0], "a.yaml");
        assert_eq!(json["history"][0]["hash"], "h1");
        assert!(Record::decode(b"{\"files\": 1}").is_err());
    }
}
