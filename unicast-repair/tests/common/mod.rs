//! Shared test harness: an ObjectSource over temp files and a real server
//! on loopback.
#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
#![allow(dead_code)] // each test file uses part of the harness

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use bytes::Bytes;
use dms_fec::{BlockSize, FecScheme, Oti};
use dms_repair::{BlobReader, FileBlob, ObjectInfo, ObjectSource, SourceError};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sha2::{Digest, Sha256};

/// Deterministic pseudo-random bytes.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Objects in temp files.
pub struct TestSource {
    pub dir: tempfile::TempDir,
    objects: Mutex<HashMap<String, ObjectInfo>>,
    /// Opens so far.
    pub opens: AtomicUsize,
    /// When set, the first open's reader fails after this many bytes.
    pub cut_first_open_after: Mutex<Option<u64>>,
    /// When set, the next look-up by location waits for a message on it.
    pub gate: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
    /// Look-ups by location so far.
    pub lookups: AtomicUsize,
}

impl TestSource {
    pub fn new() -> Arc<Self> {
        Arc::new(TestSource {
            dir: tempfile::tempdir().unwrap(),
            objects: Mutex::new(HashMap::new()),
            opens: AtomicUsize::new(0),
            cut_first_open_after: Mutex::new(None),
            gate: Mutex::new(None),
            lookups: AtomicUsize::new(0),
        })
    }

    /// Stores `data` as object `id` named `name`, RaptorQ with symbol size
    /// `t` and blocks of `block_symbols` symbols.
    pub fn add(&self, id: &str, name: &str, data: &[u8], t: u16, block_symbols: u32) -> ObjectInfo {
        let path = self.dir.path().join(id);
        std::fs::File::create(&path)
            .unwrap()
            .write_all(data)
            .unwrap();
        let oti = Oti::for_object(
            FecScheme::RaptorQ,
            data.len() as u64,
            t,
            BlockSize::Symbols(block_symbols),
        )
        .unwrap();
        let layout = oti.layout();
        let block_sha256 = (0..layout.block_count())
            .map(|sbn| {
                let r = layout.block_range(sbn).unwrap();
                Sha256::digest(&data[r.start as usize..r.end as usize]).into()
            })
            .collect();
        let info = ObjectInfo {
            id: id.to_owned(),
            name: name.to_owned(),
            version: "1".to_owned(),
            content_location: format!("http://dms.test/dl/{id}/{name}"),
            content_type: "application/octet-stream".to_owned(),
            size: data.len() as u64,
            sha256: Sha256::digest(data).into(),
            created: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            oti,
            block_sha256,
        };
        self.objects
            .lock()
            .unwrap()
            .insert(id.to_owned(), info.clone());
        info
    }
}

struct CutBlob {
    inner: FileBlob,
    limit: u64,
}

impl BlobReader for CutBlob {
    fn len(&self) -> u64 {
        self.inner.len()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        if offset + buf.len() as u64 > self.limit {
            return Err(std::io::Error::other("injected cut"));
        }
        self.inner.read_at(buf, offset)
    }
}

impl ObjectSource for TestSource {
    fn object(&self, id: &str) -> Result<Option<ObjectInfo>, SourceError> {
        Ok(self.objects.lock().unwrap().get(id).cloned())
    }

    fn object_by_location(&self, location: &str) -> Result<Option<ObjectInfo>, SourceError> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let gate = self.gate.lock().unwrap().take();
        if let Some(gate) = gate {
            gate.recv_timeout(Duration::from_secs(60)).unwrap();
        }
        Ok(self
            .objects
            .lock()
            .unwrap()
            .values()
            .find(|o| o.content_location == location)
            .cloned())
    }

    fn open(&self, object: &ObjectInfo) -> Result<Box<dyn BlobReader>, SourceError> {
        self.opens.fetch_add(1, Ordering::SeqCst);
        let blob = FileBlob::open(&self.dir.path().join(&object.id))?;
        if let Some(limit) = self.cut_first_open_after.lock().unwrap().take() {
            return Ok(Box::new(CutBlob { inner: blob, limit }));
        }
        Ok(Box::new(blob))
    }
}

/// Serves `router` on 127.0.0.1:0 with client addresses; returns the base URL.
pub async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    format!("http://{addr}")
}

/// An answer: status, headers, body.
pub struct Answer {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// Sends one request with a plain-HTTP client.
pub async fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = hyper::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::copy_from_slice(body))).unwrap();
    let res = tokio::time::timeout(Duration::from_secs(60), client.request(req))
        .await
        .unwrap()
        .unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body,
    }
}

pub async fn get(url: &str, headers: &[(&str, &str)]) -> Answer {
    request("GET", url, headers, b"").await
}
