#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

//! The repository against a reference model: random publishes (with
//! duplicate versions, shared content and injected blob-store failures),
//! deletions and state changes; after every step the catalog, the totals,
//! the blobs on disk and "latest active" agree with the model.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use dms_origin::blob::{BlobStore, BlobWriter, LocalBlobStore};
use dms_origin::{
    Filter, Kind, Limits, NewObject, ObjectPatch, Priority, RedbCatalog, RepoError, Repository,
    State, Urls,
};
use dms_repair::BlobReader;
use proptest::prelude::*;
use sha2::{Digest, Sha256};

const NAMES: [&str; 3] = ["fw", "cfg", "app"];
const VERSIONS: [&str; 4] = ["1.0.0", "1.10.0", "1.2.0", "2.0.0-rc.1"];

fn content(i: usize) -> Vec<u8> {
    // Sizes across block boundaries; index 3 repeats index 0 (shared blob).
    let len = [1, 5000, 1_100_000, 1][i];
    (0..len).map(|b| (b as u8) ^ (i as u8 % 3)).collect()
}

/// A local store whose next commit can be made to fail.
struct Flaky {
    inner: LocalBlobStore,
    fail: Arc<AtomicBool>,
}

struct FlakyWriter {
    inner: Box<dyn BlobWriter>,
    fail: bool,
}

impl BlobWriter for FlakyWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write(buf)
    }
    fn reader(&self) -> io::Result<Box<dyn BlobReader>> {
        self.inner.reader()
    }
    fn commit(self: Box<Self>, sha256: &[u8; 32]) -> io::Result<()> {
        if self.fail {
            return Err(io::Error::other("injected commit failure"));
        }
        self.inner.commit(sha256)
    }
}

impl BlobStore for Flaky {
    fn begin(&self) -> io::Result<Box<dyn BlobWriter>> {
        Ok(Box::new(FlakyWriter {
            inner: self.inner.begin()?,
            fail: self.fail.swap(false, Ordering::SeqCst),
        }))
    }
    fn open(&self, sha256: &[u8; 32]) -> io::Result<Box<dyn BlobReader>> {
        self.inner.open(sha256)
    }
    fn remove(&self, sha256: &[u8; 32]) -> io::Result<()> {
        self.inner.remove(sha256)
    }
    fn list(&self) -> io::Result<Vec<[u8; 32]>> {
        self.inner.list()
    }
    fn clean_partial(&self) -> io::Result<()> {
        self.inner.clean_partial()
    }
    fn available(&self) -> io::Result<u64> {
        self.inner.available()
    }
}

#[derive(Clone, Debug)]
enum Op {
    Publish {
        name: usize,
        version: usize,
        content: usize,
        fail: bool,
    },
    Delete(usize),
    SetState(usize, State),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, 0..4usize, 0..4usize, prop::bool::weighted(0.2)).prop_map(
            |(name, version, content, fail)| Op::Publish { name, version, content, fail }
        ),
        1 => (0..16usize).prop_map(Op::Delete),
        2 => (0..16usize, prop_oneof![Just(State::Active), Just(State::Deprecated), Just(State::Withdrawn)])
            .prop_map(|(i, s)| Op::SetState(i, s)),
    ]
}

#[derive(Clone, Debug)]
struct Row {
    id: String,
    name: &'static str,
    version: &'static str,
    content: usize,
    state: State,
}

fn check(repo: &Repository, blobs_dir: &std::path::Path, model: &[Row]) {
    let listed: Vec<(String, State)> = repo
        .list(&Filter::default())
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.state))
        .collect();
    let expected: Vec<(String, State)> = model.iter().map(|r| (r.id.clone(), r.state)).collect();
    assert_eq!(listed, expected);
    let distinct: BTreeMap<String, u64> = model
        .iter()
        .map(|r| {
            let c = content(r.content);
            (hex::encode(Sha256::digest(&c)), c.len() as u64)
        })
        .collect();
    let stats = repo.catalog().stats().unwrap();
    assert_eq!(stats.objects, model.len() as u64);
    assert_eq!(stats.stored_bytes, distinct.values().sum::<u64>());
    let on_disk: BTreeSet<String> = LocalBlobStore::open(blobs_dir)
        .unwrap()
        .list()
        .unwrap()
        .into_iter()
        .map(hex::encode)
        .collect();
    assert_eq!(on_disk, distinct.keys().cloned().collect::<BTreeSet<_>>());
    for name in NAMES {
        let want = model
            .iter()
            .filter(|r| r.name == name && r.state == State::Active)
            .max_by_key(|r| semver::Version::parse(r.version).unwrap())
            .map(|r| r.id.clone());
        assert_eq!(
            repo.latest_active(name).unwrap().map(|r| r.id),
            want,
            "{name}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn repository_matches_the_model(ops in prop::collection::vec(op(), 1..20)) {
        let dir = tempfile::tempdir().unwrap();
        let fail = Arc::new(AtomicBool::new(false));
        let blobs = Arc::new(Flaky {
            inner: LocalBlobStore::open(&dir.path().join("blobs")).unwrap(),
            fail: fail.clone(),
        });
        let catalog = Arc::new(RedbCatalog::open(&dir.path().join("catalog.redb")).unwrap());
        let repo = Repository::new(
            catalog,
            blobs,
            Some(dms_repair::manifest::generate_key()),
            Urls::new("https://m.test").unwrap(),
            Limits::default(),
        );
        let mut model: Vec<Row> = Vec::new();
        for op in ops {
            match op {
                Op::Publish { name, version, content: c, fail: f } => {
                    let (name, version) = (NAMES[name], VERSIONS[version]);
                    fail.store(f, Ordering::SeqCst);
                    let new = NewObject {
                        name: name.into(),
                        version: version.into(),
                        kind: Kind::Other,
                        priority: Priority::Low,
                        content_type: "application/octet-stream".into(),
                        metadata: BTreeMap::new(),
                    };
                    let result = repo.check_new(&new).and_then(|()| {
                        let mut up = repo.begin_upload()?;
                        for chunk in content(c).chunks(65_536) {
                            up.write(chunk)?;
                        }
                        up.finish(new)
                    });
                    fail.store(false, Ordering::SeqCst);
                    let duplicate = model.iter().any(|r| r.name == name && r.version == version);
                    match result {
                        Ok(record) => {
                            prop_assert!(!duplicate && !f);
                            model.push(Row { id: record.id, name, version, content: c, state: State::Active });
                        }
                        Err(RepoError::Conflict(_)) => prop_assert!(duplicate),
                        Err(RepoError::Io(_)) => prop_assert!(f && !duplicate),
                        Err(e) => prop_assert!(false, "unexpected {e}"),
                    }
                }
                Op::Delete(i) => {
                    if model.is_empty() {
                        continue;
                    }
                    let row = model.remove(i % model.len());
                    repo.delete(&row.id).unwrap();
                    prop_assert!(matches!(repo.delete(&row.id), Err(RepoError::NotFound(_))));
                }
                Op::SetState(i, state) => {
                    if model.is_empty() {
                        continue;
                    }
                    let n = model.len();
                    let row = &mut model[i % n];
                    row.state = state;
                    repo.patch(&row.id, &ObjectPatch { state: Some(state), ..Default::default() }).unwrap();
                }
            }
            check(&repo, &dir.path().join("blobs"), &model);
        }
    }
}
