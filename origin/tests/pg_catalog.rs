#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

//! The PostgreSQL catalog against a live server (the cluster
//! `.ci/setup.d/65-postgres.sh` starts: DMS_TEST_POSTGRES_URL and
//! DMS_TEST_POSTGRES_BIN). Each test works in a database of its own,
//! made here: objects, names and versions through the repository, tokens
//! kept as digests only, two instances migrating at once, reception
//! reports, and the cross-instance blob lock.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Barrier, mpsc};
use std::time::Duration;

use dms_origin::blob::LocalBlobStore;
use dms_origin::catalog::{Catalog, CatalogError, Filter, Notification};
use dms_origin::model::Damage;
use dms_origin::pg::{AdminToken, PgCatalog, PgReports, schema};
use dms_origin::{Kind, Limits, NewObject, Priority, RepoError, Repository, State, Urls};
use dms_repair::manifest::generate_key;
use dms_repair::report::{BytesBySource, ReportKind};
use dms_repair::{Report, ReportStore};
use sha2::{Digest, Sha256};

/// The server from the environment; `None` (after saying why) when there
/// is none and services are not required.
fn server(test: &str) -> Option<String> {
    match std::env::var("DMS_TEST_POSTGRES_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            if std::env::var("DMS_TEST_REQUIRE_SERVICES").as_deref() == Ok("1") {
                panic!("{test}: DMS_TEST_POSTGRES_URL unset and DMS_TEST_REQUIRE_SERVICES=1");
            }
            eprintln!(
                "{test}: skipped: DMS_TEST_POSTGRES_URL unset (source .ci/setup.d/65-postgres.sh)"
            );
            None
        }
    }
}

/// Runs `sql` with psql on `url`; returns what it printed (unaligned,
/// tuples only).
fn psql(url: &str, sql: &str) -> String {
    let bin = std::env::var("DMS_TEST_POSTGRES_BIN")
        .map(|b| format!("{b}/psql"))
        .unwrap_or_else(|_| "psql".into());
    let out = Command::new(bin)
        .args([
            "-X",
            "-q",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A new, empty database on the test server; returns its URL.
fn fresh_database(test: &str) -> Option<String> {
    static COUNT: AtomicU32 = AtomicU32::new(0);
    let url = server(test)?;
    let name = format!(
        "dms_{}_{}_{}",
        test.replace('-', "_"),
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    );
    psql(&url, &format!("CREATE DATABASE {name}"));
    let (base, _) = url.rsplit_once('/').unwrap();
    Some(format!("{base}/{name}"))
}

fn new(name: &str, version: &str) -> NewObject {
    NewObject {
        name: name.into(),
        version: version.into(),
        kind: Kind::Firmware,
        priority: Priority::Normal,
        content_type: "application/octet-stream".into(),
        metadata: BTreeMap::from([("model".into(), "x1".into())]),
    }
}

/// A repository on the PostgreSQL catalog at `url`, blobs under `dir`.
fn open(url: &str, dir: &std::path::Path) -> Repository {
    let catalog = Arc::new(PgCatalog::connect(url).unwrap());
    let blobs = Arc::new(LocalBlobStore::open(&dir.join("blobs")).unwrap());
    Repository::open_with(
        catalog,
        blobs,
        generate_key(),
        Urls::new("https://dms.test").unwrap(),
        Limits::default(),
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
fn objects_names_and_versions_round_trip_through_postgres() {
    let Some(url) = fresh_database("pg-objects") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let repo = open(&url, dir.path());

    // Three versions, published out of version order.
    let a = publish(&repo, "fw.bin", "1.0.0", &data(100_000, 1)).unwrap();
    let c = publish(&repo, "fw.bin", "1.10.0", &data(50_000, 3)).unwrap();
    let b = publish(&repo, "fw.bin", "1.2.0", &data(70_000, 2)).unwrap();
    let other = publish(&repo, "cfg.json", "7", &data(1000, 9)).unwrap();
    assert!(a.seq < c.seq && c.seq < b.seq && b.seq < other.seq);

    // A second instance on the same database sees exactly what was stored.
    let second = PgCatalog::connect(&url).unwrap();
    for record in [&a, &b, &c, &other] {
        assert_eq!(second.get(&record.id).unwrap().as_ref(), Some(record));
    }
    let history: Vec<String> = second
        .history("fw.bin")
        .unwrap()
        .into_iter()
        .map(|r| r.version)
        .collect();
    assert_eq!(history, ["1.0.0", "1.2.0", "1.10.0"]);
    let listed: Vec<String> = second
        .list(&Filter::default())
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(listed, [&a.id, &c.id, &b.id, &other.id].map(String::clone));
    let named = second
        .list(&Filter {
            name: Some("cfg.json".into()),
            ..Filter::default()
        })
        .unwrap();
    assert_eq!(named, vec![other.clone()]);

    // A name keeps each version once, across instances.
    match second.insert(dms_origin::ObjectRecord {
        id: "0".repeat(32),
        ..b.clone()
    }) {
        Err(CatalogError::VersionExists { name, version, id }) => {
            assert_eq!(
                (name.as_str(), version.as_str(), id),
                ("fw.bin", "1.2.0", b.id.clone())
            );
        }
        other => panic!("a second 1.2.0: {other:?}"),
    }
    assert!(matches!(
        publish(&repo, "fw.bin", "1.0.0", b"again"),
        Err(RepoError::Conflict(_))
    ));

    // Identical content under another name: one blob, two references.
    let same = publish(&repo, "fw-copy.bin", "1", &data(100_000, 1)).unwrap();
    assert_eq!(same.sha256, a.sha256);
    let stats = second.stats().unwrap();
    assert_eq!(stats.objects, 5);
    assert_eq!(stats.stored_bytes, 100_000 + 70_000 + 50_000 + 1000);

    // Updates go through; removal keeps the blob while another object
    // references it, and the id is never used again.
    let patched = second
        .update(&a.id, &mut |r| r.state = State::Deprecated)
        .unwrap()
        .unwrap();
    assert_eq!(patched.state, State::Deprecated);
    assert_eq!(repo.get(&a.id).unwrap().state, State::Deprecated);
    let (removed, unreferenced) = second.remove(&a.id).unwrap().unwrap();
    assert_eq!(removed.id, a.id);
    assert!(!unreferenced);
    assert!(second.blob_referenced(&a.sha256).unwrap());
    let (_, unreferenced) = second.remove(&same.id).unwrap().unwrap();
    assert!(unreferenced);
    assert!(!second.blob_referenced(&a.sha256).unwrap());
    assert!(second.get(&a.id).unwrap().is_none());
    assert!(matches!(
        second.insert(dms_origin::ObjectRecord {
            version: "9.9.9".into(),
            ..a.clone()
        }),
        Err(CatalogError::IdUsed(_))
    ));

    // Notifications (replacing by device), damage and scrub totals.
    let note = |device: &str, code: u16| Notification {
        device: device.into(),
        code,
        text: format!("{code} text"),
        at: 1_700_000_000,
        lwm2m: None,
        outcome: None,
    };
    second
        .record_notification(&b.id, &note("dev-2", 900))
        .unwrap();
    second
        .record_notification(&b.id, &note("dev-1", 952))
        .unwrap();
    second
        .record_notification(&b.id, &note("dev-2", 901))
        .unwrap();
    assert_eq!(
        repo.catalog().notifications(&b.id).unwrap(),
        vec![note("dev-1", 952), note("dev-2", 901)]
    );
    let damage = Damage {
        found: 1_700_000_100,
        reason: "sha256 differs".into(),
    };
    assert_eq!(
        second.set_damage(&b.sha256, Some(&damage)).unwrap(),
        vec![b.id.clone()]
    );
    assert_eq!(repo.get(&b.id).unwrap().damaged, Some(damage.clone()));
    second
        .record_scrub(&[(b.sha256.clone(), damage)], 3, 120_000, 1_700_000_200)
        .unwrap();
    second.record_scrub(&[], 3, 120_000, 1_700_000_300).unwrap();
    let totals = repo.catalog().scrub_totals().unwrap();
    assert_eq!(
        (
            totals.runs,
            totals.last_at,
            totals.objects_total,
            totals.bytes_total
        ),
        (2, 1_700_000_300, 6, 240_000)
    );
    assert_eq!(
        second.set_damage(&b.sha256, None).unwrap(),
        vec![b.id.clone()]
    );
    assert_eq!(repo.get(&b.id).unwrap().damaged, None);
}

#[test]
fn tokens_are_kept_as_digests_only() {
    let Some(url) = fresh_database("pg-tokens") else {
        return;
    };
    let first = PgCatalog::connect(&url).unwrap();
    let AdminToken::Created(token) = first.ensure_admin_token(None).unwrap() else {
        panic!("an empty catalog had an admin token");
    };
    // Another instance (with a token file of its own) keeps the first's.
    let second = PgCatalog::connect(&url).unwrap();
    assert_eq!(
        second
            .ensure_admin_token(Some("not-the-first-token".into()))
            .unwrap(),
        AdminToken::Existing
    );
    let stored = second.tokens().unwrap();
    assert_eq!(stored.len(), 1);
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    assert_eq!(stored[0].sha256, digest);
    assert_eq!(stored[0].name, "admin");

    // The table (every column, as text) holds the digest, never the token.
    let table = psql(&url, "SELECT t::text FROM dms_tokens t");
    assert!(!table.contains(&token), "{table}");
    assert!(!table.contains("not-the-first-token"), "{table}");
    assert!(table.contains(&hex::encode(digest)), "{table}");
    let everything = psql(
        &url,
        "SELECT string_agg(t::text, ' ') FROM (SELECT * FROM dms_settings) t",
    );
    assert!(!everything.contains(&token));
}

#[test]
fn two_instances_starting_together_migrate_once_and_both_work() {
    let Some(url) = fresh_database("pg-migrate") else {
        return;
    };
    let barrier = Arc::new(Barrier::new(2));
    let starts: Vec<_> = (0..2)
        .map(|_| {
            let (url, barrier) = (url.clone(), barrier.clone());
            std::thread::spawn(move || {
                let catalog = PgCatalog::connect_lazy(&url).unwrap();
                barrier.wait();
                let applied = catalog.migrate().unwrap();
                barrier.wait();
                // Both make the admin token at once: one is stored.
                let token = catalog.ensure_admin_token(None).unwrap();
                (catalog, applied, token)
            })
        })
        .collect();
    let started: Vec<_> = starts.into_iter().map(|t| t.join().unwrap()).collect();
    let mut applied: Vec<usize> = started.iter().map(|(_, n, _)| *n).collect();
    applied.sort_unstable();
    assert_eq!(applied, [0, schema::MIGRATIONS.len()]);
    let created = started
        .iter()
        .filter(|(_, _, t)| matches!(t, AdminToken::Created(_)))
        .count();
    assert_eq!(created, 1);
    let versions = psql(
        &url,
        "SELECT string_agg(version::text, ',' ORDER BY version) FROM dms_schema_migrations",
    );
    let expected: Vec<String> = schema::MIGRATIONS
        .iter()
        .map(|(v, _)| v.to_string())
        .collect();
    assert_eq!(versions.trim(), expected.join(","));
    // Migrating again applies nothing.
    assert_eq!(started[0].0.migrate().unwrap(), 0);

    // Both work on the one schema: what one publishes the other lists.
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let repos: Vec<Repository> = started
        .into_iter()
        .zip(&dirs)
        .map(|((catalog, _, _), dir)| {
            Repository::open_with(
                Arc::new(catalog),
                Arc::new(LocalBlobStore::open(&dir.path().join("blobs")).unwrap()),
                generate_key(),
                Urls::new("https://dms.test").unwrap(),
                Limits::default(),
            )
            .unwrap()
        })
        .collect();
    let one = publish(&repos[0], "a.bin", "1", &data(5000, 1)).unwrap();
    let two = publish(&repos[1], "b.bin", "1", &data(6000, 2)).unwrap();
    for repo in &repos {
        let ids: Vec<String> = repo
            .list(&Filter::default())
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, [one.id.clone(), two.id.clone()]);
    }
}

#[test]
fn reception_reports_are_stored_in_postgres() {
    let Some(url) = fresh_database("pg-reports") else {
        return;
    };
    let one = PgReports::new(PgCatalog::connect(&url).unwrap());
    let other = PgReports::new(PgCatalog::connect(&url).unwrap());
    let report = |device: &str, success: bool, repair: u64| Report {
        object: "0123456789abcdef0123456789abcdef".into(),
        device: device.into(),
        success,
        bytes: BytesBySource {
            broadcast: 1_000_000,
            peers: 5,
            repair,
        },
        seconds_to_complete: Some(12.5),
        kind: ReportKind::Json,
        received_at: 1_700_000_000,
        repair_failovers: Vec::new(),
    };
    one.put(&report("ue-2", false, 0)).unwrap();
    other.put(&report("ue-1", true, 4096)).unwrap();
    // A device's later report replaces its earlier one.
    other.put(&report("ue-2", true, 100)).unwrap();
    let expected = vec![report("ue-1", true, 4096), report("ue-2", true, 100)];
    assert_eq!(
        one.reports("0123456789abcdef0123456789abcdef").unwrap(),
        expected
    );
    assert_eq!(
        other.reports("0123456789abcdef0123456789abcdef").unwrap(),
        expected
    );
    assert!(
        one.reports("ffffffffffffffffffffffffffffffff")
            .unwrap()
            .is_empty()
    );
    let rows = psql(&url, "SELECT count(*) FROM dms_reports");
    assert_eq!(rows.trim(), "2");
}

#[test]
fn a_blob_lock_holds_other_instances_off_until_it_drops() {
    let Some(url) = fresh_database("pg-lock") else {
        return;
    };
    let sha = hex::encode(Sha256::digest(b"content"));
    let one = PgCatalog::connect(&url).unwrap();
    let other = PgCatalog::connect(&url).unwrap();
    let held = one.lock_blob(&sha).unwrap().unwrap();
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let lock = other.lock_blob(&sha).unwrap().unwrap();
        tx.send(()).unwrap();
        drop(lock);
    });
    // Not granted while held (a broken lock would be granted at once).
    assert!(rx.recv_timeout(Duration::from_millis(500)).is_err());
    drop(held);
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the lock was not granted after its holder dropped it");
    waiter.join().unwrap();
}

#[test]
fn one_instance_holds_a_session_lease_and_another_takes_it_once_expired() {
    let Some(url) = fresh_database("pg-lease") else {
        return;
    };
    let ttl = Duration::from_secs(1);
    let (a, b) = (
        PgCatalog::connect(&url).unwrap(),
        PgCatalog::connect(&url).unwrap(),
    );

    // Two instances asking at once: exactly one is granted.
    let barrier = Arc::new(Barrier::new(2));
    let takers: Vec<_> = [("a", a.clone()), ("b", b.clone())]
        .into_iter()
        .map(|(name, catalog)| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                catalog
                    .take_session_lease("s-race", name, Duration::from_secs(60))
                    .unwrap()
            })
        })
        .collect();
    let granted: Vec<_> = takers
        .into_iter()
        .filter_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(granted.len(), 1, "{granted:?}");
    assert_eq!(granted[0].generation, 1);

    // A holds "s1"; B is refused while A renews.
    let lease = a.take_session_lease("s1", "a", ttl).unwrap().unwrap();
    assert_eq!((lease.holder.as_str(), lease.generation), ("a", 1));
    assert_eq!(
        b.take_session_lease("s1", "b", Duration::from_secs(60))
            .unwrap(),
        None
    );
    assert!(a.renew_session_lease("s1", "a", ttl, 17).unwrap());
    assert!(!b.renew_session_lease("s1", "b", ttl, 99).unwrap());
    // Taken again by its holder: the same generation.
    assert_eq!(
        a.take_session_lease("s1", "a", ttl)
            .unwrap()
            .unwrap()
            .generation,
        1
    );

    // A stops renewing (as if killed): B gets it once it expires, with
    // the next generation and A's last FDT instance id.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let taken = loop {
        if let Some(lease) = b
            .take_session_lease("s1", "b", Duration::from_secs(60))
            .unwrap()
        {
            break lease;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the lease never expired"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        taken,
        dms_origin::catalog::SessionLease {
            holder: "b".into(),
            generation: 2,
            fdt_instance: 17,
        }
    );
    // A, back, has lost it and cannot take it while B holds it.
    assert!(!a.renew_session_lease("s1", "a", ttl, 18).unwrap());
    assert_eq!(a.take_session_lease("s1", "a", ttl).unwrap(), None);
    // Released by B: A may take it at once, one generation on.
    assert!(
        b.renew_session_lease("s1", "b", Duration::from_secs(60), 40)
            .unwrap()
    );
    b.release_session_lease("s1", "b").unwrap();
    let back = a.take_session_lease("s1", "a", ttl).unwrap().unwrap();
    assert_eq!((back.generation, back.fdt_instance), (3, 40));
}

#[test]
fn the_embedded_catalog_always_grants_the_local_instance_its_leases() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = dms_origin::RedbCatalog::open(&dir.path().join("catalog.redb")).unwrap();
    let ttl = Duration::from_secs(1);
    let lease = catalog
        .take_session_lease("s1", "local", ttl)
        .unwrap()
        .unwrap();
    assert_eq!((lease.holder.as_str(), lease.generation), ("local", 1));
    assert!(catalog.renew_session_lease("s1", "local", ttl, 5).unwrap());
    catalog.release_session_lease("s1", "local").unwrap();
}
