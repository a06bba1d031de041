#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

//! The repository without HTTP: publish, dedup, history, delete, veto,
//! crash leftovers, and a read-only handle beside the writer.

use std::collections::BTreeMap;
use std::sync::Arc;

use dms_origin::catalog::Filter;
use dms_origin::repo::block_hashes;
use dms_origin::{
    DeleteVeto, Kind, Limits, NewObject, Priority, RepoError, Repository, State, Urls,
};
use dms_repair::ObjectSource;
use dms_repair::manifest::generate_key;
use sha2::{Digest, Sha256};

fn new(name: &str, version: &str) -> NewObject {
    NewObject {
        name: name.into(),
        version: version.into(),
        kind: Kind::Firmware,
        priority: Priority::Normal,
        content_type: "application/octet-stream".into(),
        metadata: BTreeMap::new(),
    }
}

fn open(dir: &std::path::Path, limits: Limits) -> Repository {
    Repository::open(
        dir,
        generate_key(),
        Urls::new("https://dms.test").unwrap(),
        limits,
    )
    .unwrap()
}

fn publish(
    repo: &Repository,
    name: &str,
    version: &str,
    bytes: &[u8],
) -> Result<dms_origin::ObjectRecord, RepoError> {
    let n = new(name, version);
    repo.check_new(&n)?;
    let mut up = repo.begin_upload()?;
    for chunk in bytes.chunks(7777) {
        up.write(chunk)?;
    }
    up.finish(n)
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn publish_hashes_lays_out_and_dedups() {
    let dir = tempfile::tempdir().unwrap();
    let repo = open(dir.path(), Limits::default());
    let bytes = data(2_500_000, 1);
    let a = publish(&repo, "fw.bin", "1.0.0", &bytes).unwrap();
    assert_eq!(a.sha256, hex::encode(Sha256::digest(&bytes)));
    assert_eq!(a.size, bytes.len() as u64);
    assert_eq!(a.fec.encoding_id, 6);
    assert_eq!(a.fec.symbol_size, 1400);
    assert_eq!(a.fec.source_blocks, 3);
    assert_eq!(a.block_sha256.len(), 3);
    // Block hashes match the bytes of each block of the layout.
    let oti = Repository::oti(&a).unwrap();
    let layout = oti.layout();
    for sbn in 0..3 {
        let r = layout.block_range(sbn).unwrap();
        let h = hex::encode(Sha256::digest(&bytes[r.start as usize..r.end as usize]));
        assert_eq!(a.block_sha256[sbn as usize], h);
    }
    // Declaring the size hashes blocks while writing: the same hashes.
    let n = new("fw.bin", "0.9.0");
    let mut up = repo.begin_upload().unwrap();
    up.declare_size(bytes.len() as u64).unwrap();
    for chunk in bytes.chunks(100_003) {
        up.write(chunk).unwrap();
    }
    let declared = up.finish(n).unwrap();
    assert_eq!(declared.block_sha256, a.block_sha256);
    assert_eq!(declared.fec, a.fec);
    repo.delete(&declared.id).unwrap();
    // A body shorter or longer than declared is refused.
    let mut up = repo.begin_upload().unwrap();
    up.declare_size(10).unwrap();
    up.write(b"12345").unwrap();
    assert!(matches!(
        up.finish(new("short", "1")),
        Err(RepoError::Invalid(_))
    ));
    let mut up = repo.begin_upload().unwrap();
    up.declare_size(4).unwrap();
    assert!(up.write(b"12345").is_err());
    drop(up); // an abandoned upload leaves nothing
    // The same bytes under another version are stored once.
    let b = publish(&repo, "fw.bin", "1.1.0", &bytes).unwrap();
    assert_ne!(a.id, b.id);
    let stats = repo.catalog().stats().unwrap();
    assert_eq!(stats.objects, 2);
    assert_eq!(stats.stored_bytes, bytes.len() as u64);
    let blobs: Vec<_> = walk(&dir.path().join("blobs"));
    assert_eq!(blobs.len(), 1, "{blobs:?}");
    // Deleting one keeps the shared blob; deleting both removes it.
    repo.delete(&a.id).unwrap();
    assert_eq!(walk(&dir.path().join("blobs")).len(), 1);
    repo.delete(&b.id).unwrap();
    assert!(walk(&dir.path().join("blobs")).is_empty());
    assert!(matches!(repo.get(&a.id), Err(RepoError::NotFound(_))));
}

fn walk(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for fan in std::fs::read_dir(root).unwrap() {
        let fan = fan.unwrap().path();
        if fan.is_dir() {
            for f in std::fs::read_dir(&fan).unwrap() {
                out.push(f.unwrap().path());
            }
        }
    }
    out
}

#[test]
fn history_orders_semver_and_latest_skips_inactive() {
    let dir = tempfile::tempdir().unwrap();
    let repo = open(dir.path(), Limits::default());
    let v10 = publish(&repo, "os", "1.10.0", b"ten").unwrap();
    let v9 = publish(&repo, "os", "1.9.0", b"nine").unwrap();
    publish(&repo, "other", "1.0.0", b"x").unwrap();
    let names: Vec<String> = repo
        .history("os")
        .unwrap()
        .into_iter()
        .map(|r| r.version)
        .collect();
    assert_eq!(names, ["1.9.0", "1.10.0"]);
    assert_eq!(repo.latest_active("os").unwrap().unwrap().id, v10.id);
    repo.patch(
        &v10.id,
        &dms_origin::ObjectPatch {
            state: Some(State::Deprecated),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(repo.latest_active("os").unwrap().unwrap().id, v9.id);
    assert!(repo.latest_active("none").unwrap().is_none());
    // A version is published once per name.
    assert!(matches!(
        publish(&repo, "os", "1.9.0", b"again"),
        Err(RepoError::Conflict(_))
    ));
    let listed = repo
        .list(&Filter {
            name: Some("os".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(listed.len(), 2);
    let active = repo
        .list(&Filter {
            state: Some(State::Active),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(active.len(), 2);
}

#[test]
fn quota_refuses_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        quota_bytes: Some(10_000),
        ..Limits::default()
    };
    let repo = open(dir.path(), limits);
    publish(&repo, "a", "1", &data(6_000, 1)).unwrap();
    let err = publish(&repo, "b", "1", &data(6_000, 2)).unwrap_err();
    assert!(matches!(err, RepoError::TooLarge(_)), "{err}");
    assert_eq!(repo.list(&Filter::default()).unwrap().len(), 1);
    assert_eq!(walk(&dir.path().join("blobs")).len(), 1);
    assert_eq!(
        std::fs::read_dir(dir.path().join("blobs/tmp"))
            .unwrap()
            .count(),
        0
    );
    assert!(matches!(
        publish(&repo, "../x", "1", b"x"),
        Err(RepoError::Invalid(_))
    ));
    assert!(matches!(
        publish(&repo, "e", "1", b""),
        Err(RepoError::Invalid(_))
    ));
}

#[test]
fn concurrent_uploads_together_stay_within_the_quota() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        quota_bytes: Some(10_000),
        ..Limits::default()
    };
    let repo = open(dir.path(), limits);
    // Both begin while nothing is stored: each alone fits.
    let mut first = repo.begin_upload().unwrap();
    let mut second = repo.begin_upload().unwrap();
    first.write(&data(6_000, 1)).unwrap();
    second.write(&data(6_000, 2)).unwrap();
    first.finish(new("a", "1")).unwrap();
    let err = second.finish(new("b", "1")).unwrap_err();
    assert!(matches!(err, RepoError::TooLarge(_)), "{err}");
    assert_eq!(repo.list(&Filter::default()).unwrap().len(), 1);
    assert_eq!(walk(&dir.path().join("blobs")).len(), 1);
    // What is left still takes an upload that fits.
    let mut small = repo.begin_upload().unwrap();
    small.write(&data(4_000, 3)).unwrap();
    small.finish(new("c", "1")).unwrap();
}

struct Refuse;
impl DeleteVeto for Refuse {
    fn veto(&self, id: &str) -> Option<String> {
        Some(format!("session 7 sends {id}"))
    }
}

#[test]
fn delete_veto_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let repo = open(dir.path(), Limits::default());
    let a = publish(&repo, "a", "1", b"bytes").unwrap();
    repo.set_delete_veto(Arc::new(Refuse));
    assert!(matches!(repo.delete(&a.id), Err(RepoError::InUse(_))));
    assert!(repo.get(&a.id).is_ok());
}

#[test]
fn restart_removes_orphans_and_read_only_handle_follows_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let key = generate_key();
    let urls = Urls::new("https://dms.test").unwrap();
    {
        let repo =
            Repository::open(dir.path(), key.clone(), urls.clone(), Limits::default()).unwrap();
        publish(&repo, "kept", "1", b"kept bytes").unwrap();
    }
    // What a crash leaves: a partial upload and a durable blob never committed.
    std::fs::write(dir.path().join("blobs/tmp/upload-x"), b"partial").unwrap();
    let orphan = Sha256::digest(b"orphan");
    let hex_orphan = hex::encode(orphan);
    std::fs::create_dir_all(dir.path().join("blobs").join(&hex_orphan[..2])).unwrap();
    std::fs::write(
        dir.path()
            .join("blobs")
            .join(&hex_orphan[..2])
            .join(&hex_orphan),
        b"orphan",
    )
    .unwrap();
    let repo = Repository::open(dir.path(), key, urls.clone(), Limits::default()).unwrap();
    assert_eq!(walk(&dir.path().join("blobs")).len(), 1);
    assert_eq!(
        std::fs::read_dir(dir.path().join("blobs/tmp"))
            .unwrap()
            .count(),
        0
    );

    // A read-only repository (repair-serve) beside the writer sees its commits.
    let reader = Repository::open_read_only(dir.path(), urls).unwrap();
    let b = publish(&repo, "later", "2", b"later bytes").unwrap();
    let info = reader.object(&b.id).unwrap().unwrap();
    assert_eq!(info.size, 11);
    assert_eq!(
        info.content_location,
        format!("https://dms.test/dl/{}/later", b.id)
    );
    assert_eq!(
        reader
            .object_by_location(&info.content_location)
            .unwrap()
            .unwrap()
            .id,
        b.id
    );
    let blob = reader.open(&info).unwrap();
    let mut buf = vec![0u8; 11];
    blob.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(buf, b"later bytes");
    assert_eq!(block_hashes(&*blob, &info.oti).unwrap(), info.block_sha256);
    // Withdrawn objects are not served.
    repo.patch(
        &b.id,
        &dms_origin::ObjectPatch {
            state: Some(State::Withdrawn),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(reader.object(&b.id).unwrap().is_none());
}
