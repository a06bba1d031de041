//! Sessions on disk, so a restarted origin still knows them: one JSON file
//! per session in `DATA/sessions/{id}.json`, written atomically (temp file,
//! fsync, rename) when the session is scheduled, starts and ends. It holds
//! the request as accepted (TSI and start time filled in, so a resumed
//! session keeps them) and the last view (state, counters).

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::request::SessionRequest;
use super::view::SessionView;
use crate::fsutil::atomic_write;

/// The directory under the data directory.
pub const SESSION_DIR: &str = "sessions";

/// Largest session file read back (a request names at most 256 objects).
const MAX_FILE_BYTES: u64 = 4 << 20;

/// What is kept of one session.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PersistedSession {
    /// The request, with its TSI and start time as the origin fixed them.
    pub request: SessionRequest,
    /// The session as last seen.
    pub view: SessionView,
}

/// The session files of a data directory.
#[derive(Debug)]
pub struct SessionStore {
    dir: PathBuf,
}

impl SessionStore {
    /// Opens (creating) `dir`.
    pub fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(SessionStore {
            dir: dir.to_owned(),
        })
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Writes a session's file (atomically).
    pub fn save(&self, session: &PersistedSession) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(session).map_err(io::Error::other)?;
        atomic_write(&self.path(&session.view.id), &bytes, 0o644)
    }

    /// Removes a session's file.
    pub fn remove(&self, id: &str) -> io::Result<()> {
        match std::fs::remove_file(self.path(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every readable session file, oldest first. A file that does not
    /// parse is skipped with a warning (and left for the operator).
    pub fn load_all(&self) -> io::Result<Vec<PersistedSession>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let is_session = path.extension().is_some_and(|e| e == "json")
                && path
                    .file_name()
                    .is_some_and(|n| !n.to_string_lossy().starts_with('.'));
            if !is_session {
                continue;
            }
            match read(&path) {
                Ok(session) if self.path(&session.view.id) == path => out.push(session),
                Ok(_) => {
                    tracing::warn!(path = %path.display(), "session file under another id's name: skipped")
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "session file unreadable: skipped");
                }
            }
        }
        out.sort_by(|a, b| (a.view.created, &a.view.id).cmp(&(b.view.created, &b.view.id)));
        Ok(out)
    }
}

fn read(path: &Path) -> io::Result<PersistedSession> {
    let len = std::fs::metadata(path)?.len();
    if len > MAX_FILE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{len} bytes: too large"),
        ));
    }
    let bytes = std::fs::read(path)?;
    serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;
    use crate::sessions::view::SessionState;

    fn persisted(id: &str, created: u64) -> PersistedSession {
        let request: SessionRequest = serde_json::from_value(serde_json::json!({
            "objects": ["ab12"], "group": "239.255.1.1:5000", "iface": "127.0.0.1",
            "rate": 10, "fec": "raptorq", "repair": 20, "tsi": 7
        }))
        .unwrap();
        let view = SessionView {
            id: id.to_owned(),
            state: SessionState::Finished,
            tsi: 7,
            group: "239.255.1.1:5000".into(),
            iface: "127.0.0.1".into(),
            rate: 10.0,
            fec: crate::sessions::SessionFec::Raptorq,
            repair: 20,
            symbol_size: None,
            carousel: 1,
            start_at: None,
            created,
            objects: Vec::new(),
            packets_sent: 42,
            bytes_sent: 4200,
            fdt_packets_sent: 8,
            started_at: Some(created),
            finished_at: Some(created + 1),
            error: None,
            restarts: 0,
            procedures: Default::default(),
            sdp_uri: None,
            apd_uri: None,
            usd_uri: None,
        };
        PersistedSession { request, view }
    }

    #[test]
    fn sessions_come_back_oldest_first_and_bad_files_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::open(dir.path()).unwrap();
        store.save(&persisted("bb", 20)).unwrap();
        store.save(&persisted("aa", 30)).unwrap();
        // Garbage, a file named for another id, and a temp file.
        std::fs::write(dir.path().join("cc.json"), b"{not json").unwrap();
        let mut other = serde_json::to_vec(&persisted("dd", 5)).unwrap();
        std::fs::write(dir.path().join("ee.json"), &other).unwrap();
        other.truncate(10);
        std::fs::write(dir.path().join(".tmp-x.json"), &other).unwrap();
        let loaded = store.load_all().unwrap();
        let ids: Vec<&str> = loaded.iter().map(|p| p.view.id.as_str()).collect();
        assert_eq!(ids, ["bb", "aa"]);
        assert_eq!(loaded[0].view.packets_sent, 42);
        assert_eq!(loaded[0].request.tsi, Some(7));
        store.remove("bb").unwrap();
        store.remove("bb").unwrap();
        assert_eq!(store.load_all().unwrap().len(), 1);
    }
}
