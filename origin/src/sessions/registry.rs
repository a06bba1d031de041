//! The session registry: starts sessions, finds and stops them, and
//! refuses deleting objects that a scheduled or running session sends.
//!
//! Race-freedom with deletions: a session start looks its objects up and
//! opens their blobs while it holds the registry's gate, and
//! [`SessionRegistry::delete_object`] holds the same gate around
//! [`Repository::delete`], whose veto then sees the new session. An open
//! blob stays readable even if its file is later unlinked, so a session
//! never loses bytes it started with.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use dms_fec::{BlockSize, Oti};
use dms_flute::fdt::FdtDelta;
use dms_flute::{ObjectSpec, Sender, SenderConfig};
use dms_repair::BlobReader;

use super::blob_source::BlobCursor;
use super::request::{SessionRequest, SessionSpec, StartAt, unix_now};
use super::runner::{self, PlannedObject, Prepared};
use super::session::{Session, SessionObject, Status};
use super::store::SessionStore;
use super::view::{SessionState, SessionView};
use crate::deltas::{DeltaRecord, DeltaStore};
use crate::model::{ObjectRecord, Priority, State};
use crate::repo::{DeleteVeto, RepoError, Repository};
use crate::transmit::{TransmitConfig, Transmitter, ntp_expires};

/// Ended sessions kept for `GET` (the oldest ended ones go first).
const KEEP_ENDED: usize = 1000;
/// Most sessions scheduled or running at once.
const MAX_ACTIVE: usize = 64;

/// Why a session could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// An object is unknown or withdrawn.
    #[error("no object {0} (unknown or withdrawn)")]
    UnknownObject(String),
    /// The request cannot work.
    #[error("{0}")]
    Invalid(String),
    /// Too many sessions.
    #[error("{0}")]
    Busy(String),
    /// The repository failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// The broadcast sessions of an origin, kept on disk when it has a
/// [`SessionStore`] (see [`SessionRegistry::recover`]).
#[derive(Debug)]
pub struct SessionRegistry {
    repo: Arc<Repository>,
    /// The stored deltas (sessions may carry them beside their targets).
    deltas: Option<Arc<DeltaStore>>,
    /// Where sessions are kept across restarts.
    store: Option<Arc<SessionStore>>,
    /// Held by a session start and by [`SessionRegistry::delete_object`].
    gate: Mutex<()>,
    sessions: Mutex<Vec<Arc<Session>>>,
    /// Sessions that had ended before the last restart (their views).
    archived: Mutex<Vec<SessionView>>,
}

/// The repository's delete veto (a weak reference: the repository does
/// not keep the registry alive).
struct Veto(Weak<SessionRegistry>);

impl DeleteVeto for Veto {
    fn veto(&self, id: &str) -> Option<String> {
        self.0.upgrade()?.veto(id)
    }
}

impl SessionRegistry {
    /// A registry over `repo`, installed as its delete veto.
    pub fn install(repo: Arc<Repository>) -> Arc<Self> {
        Self::install_with_deltas(repo, None, None)
    }

    /// A registry over `repo` whose sessions can also send the deltas of
    /// `deltas` and are kept in `store`, installed as the repository's
    /// delete veto. Call [`SessionRegistry::recover`] next to take up the
    /// stored sessions.
    pub fn install_with_deltas(
        repo: Arc<Repository>,
        deltas: Option<Arc<DeltaStore>>,
        store: Option<SessionStore>,
    ) -> Arc<Self> {
        let registry = Arc::new(Self {
            repo: repo.clone(),
            deltas,
            store: store.map(Arc::new),
            gate: Mutex::new(()),
            sessions: Mutex::new(Vec::new()),
            archived: Mutex::new(Vec::new()),
        });
        repo.set_delete_veto(Arc::new(Veto(Arc::downgrade(&registry))));
        registry
    }

    fn list_guard(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Why object `id` may not be deleted now, if a session uses it.
    pub fn veto(&self, id: &str) -> Option<String> {
        self.list_guard()
            .iter()
            .find(|s| s.uses(id) && s.state().is_active())
            .map(|s| {
                format!(
                    "broadcast session {} ({}) sends it",
                    s.id,
                    s.state().as_str()
                )
            })
    }

    /// Deletes an object unless a session uses it, excluding session
    /// starts meanwhile (blocking).
    pub fn delete_object(&self, id: &str) -> Result<ObjectRecord, RepoError> {
        let _gate = self.gate.lock().unwrap_or_else(PoisonError::into_inner);
        self.repo.delete(id)
    }

    /// The session with this id.
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.list_guard().iter().find(|s| s.id == id).cloned()
    }

    /// Every session of this run, oldest first.
    pub fn list(&self) -> Vec<Arc<Session>> {
        self.list_guard().clone()
    }

    fn archived_guard(&self) -> std::sync::MutexGuard<'_, Vec<SessionView>> {
        self.archived.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The views of every kept session, those ended before the last
    /// restart included, oldest first.
    pub fn views(&self) -> Vec<SessionView> {
        let mut views = self.archived_guard().clone();
        views.extend(self.list().iter().map(|s| s.view()));
        views.sort_by_key(|v| v.created);
        views
    }

    /// The view of session `id`, ended before the last restart or not.
    pub fn view(&self, id: &str) -> Option<SessionView> {
        match self.get(id) {
            Some(session) => Some(session.view()),
            None => self.archived_guard().iter().find(|v| v.id == id).cloned(),
        }
    }

    /// Sessions by state (for the metrics gauge).
    pub fn counts(&self) -> Vec<(SessionState, usize)> {
        let views = self.views();
        SessionState::ALL
            .iter()
            .map(|&state| (state, views.iter().filter(|v| v.state == state).count()))
            .collect()
    }

    /// Stops a session and answers its view; `None` if there is no such
    /// session (an ended one is left as it is).
    pub fn stop(&self, id: &str) -> Option<SessionView> {
        match self.get(id) {
            Some(session) => {
                session.stop();
                Some(session.view())
            }
            None => self.view(id),
        }
    }

    /// Takes up the sessions kept on disk: those that had ended are listed
    /// again; those scheduled or running when the origin stopped are
    /// started again with their id and TSI (a start time that passed
    /// meanwhile means now). A session that cannot start again (an object
    /// gone) is kept as failed, with the reason. Returns how many resumed.
    pub fn recover(&self) -> std::io::Result<usize> {
        let Some(store) = &self.store else {
            return Ok(0);
        };
        let mut resumed = 0;
        let mut stored = store.load_all()?;
        // The oldest ended sessions beyond what is kept go.
        let ended = stored.iter().filter(|p| !p.view.state.is_active()).count();
        let mut excess = ended.saturating_sub(KEEP_ENDED);
        stored.retain(|p| {
            if excess > 0 && !p.view.state.is_active() {
                excess -= 1;
                let _ = store.remove(&p.view.id);
                false
            } else {
                true
            }
        });
        for persisted in stored {
            let mut view = persisted.view;
            if !view.state.is_active() {
                self.archived_guard().push(view);
                continue;
            }
            let mut request = persisted.request;
            if request
                .start_at
                .as_ref()
                .and_then(|s| super::request::parse_start_at(s).ok())
                .is_some_and(|at| at <= unix_now())
            {
                request.start_at = None;
            }
            let started = request
                .validate()
                .map_err(SessionError::Invalid)
                .and_then(|spec| {
                    self.launch(
                        &request,
                        spec,
                        Resume {
                            id: view.id.clone(),
                            created: view.created,
                            restarts: view.restarts.saturating_add(1),
                        },
                    )
                });
            match started {
                Ok(session) => {
                    resumed += 1;
                    tracing::info!(session = %session.id, restarts = session.restarts, "broadcast session resumed after a restart");
                }
                Err(e) => {
                    tracing::warn!(session = %view.id, error = %e, "broadcast session not resumed");
                    view.state = SessionState::Failed;
                    view.finished_at = Some(unix_now());
                    view.error = Some(format!("not resumed after a restart: {e}"));
                    let failed = super::store::PersistedSession {
                        request,
                        view: view.clone(),
                    };
                    if let Err(e) = store.save(&failed) {
                        tracing::warn!(session = %view.id, error = %e, "session not saved");
                    }
                    self.archived_guard().push(view);
                }
            }
        }
        Ok(resumed)
    }

    /// Starts a session (blocking: looks objects up and opens their blobs,
    /// opens the socket); it runs on its own thread. `request` is what was
    /// asked (`spec` its validation), kept on disk with the session.
    pub fn start(
        &self,
        request: &SessionRequest,
        spec: SessionSpec,
    ) -> Result<Arc<Session>, SessionError> {
        let new = Resume {
            id: hex::encode(rand::random::<[u8; 16]>()),
            created: unix_now(),
            restarts: 0,
        };
        self.launch(request, spec, new)
    }

    fn launch(
        &self,
        request: &SessionRequest,
        spec: SessionSpec,
        identity: Resume,
    ) -> Result<Arc<Session>, SessionError> {
        let _gate = self.gate.lock().unwrap_or_else(PoisonError::into_inner);
        let active = self
            .list_guard()
            .iter()
            .filter(|s| s.state().is_active())
            .count();
        if active >= MAX_ACTIVE {
            return Err(SessionError::Busy(format!(
                "{active} sessions are scheduled or running (at most {MAX_ACTIVE})"
            )));
        }
        let mut planned: Vec<Planned> = Vec::with_capacity(spec.objects.len());
        for id in &spec.objects {
            let (record, delta) = self.lookup(id)?;
            let full = delta.is_none().then(|| record.clone());
            if !planned.iter().any(|p| p.0.id == record.id) {
                planned.push(self.plan(record, delta, &spec)?);
            }
            // The deltas asked for beside a full object, ahead of it: a
            // device holding the base is done once its (small) delta is in.
            if let Some(target) = full {
                let at = planned
                    .iter()
                    .position(|p| p.0.id == target.id)
                    .unwrap_or(planned.len());
                for delta in self.session_deltas(&target, &spec)? {
                    let record = delta.as_object(&target, self.repo.urls());
                    if !planned.iter().any(|p| p.0.id == record.id) {
                        let fdt = self.fdt_delta(&delta, &target)?;
                        planned.insert(at, self.plan(record, Some((delta, fdt)), &spec)?);
                    }
                }
            }
        }
        // Critical first; equal priorities keep the order asked (and
        // share the channel in the sender).
        planned.sort_by_key(|(r, ..)| r.priority);

        let transported: u64 = planned.iter().map(|(r, ..)| r.size).sum();
        let transmitter = transmitter(&spec, transported, planned.len())?;
        dry_run(transmitter.sender().config(), &planned, spec.repair)?;
        let mut objects = Vec::with_capacity(planned.len());
        let mut specs = Vec::with_capacity(planned.len());
        for (record, oti, stored_layout, cursor, delta) in planned {
            let location = self.repo.urls().uri(&record);
            specs.push(PlannedObject {
                cursor,
                content_location: location.clone(),
                oti,
                repair_percent: spec.repair,
                priority: priority_rank(record.priority),
                content_type: record.content_type.clone(),
                size: record.size,
                sha256: sha_bytes(&record.sha256)?,
                manifest: self.repo.urls().manifest_uri(&record.id),
                delta,
            });
            objects.push(SessionObject {
                id: record.id.clone(),
                name: record.name.clone(),
                version: record.version.clone(),
                priority: record.priority,
                content_location: location,
                size: record.size,
                stored_layout,
            });
        }
        // Kept with the TSI and start time fixed, so a resumed session is
        // the same session to its receivers.
        let mut accepted = request.clone();
        accepted.tsi = Some(spec.tsi);
        accepted.start_at = spec.start_at.map(StartAt::Unix);
        let session = Arc::new(Session {
            id: identity.id,
            created: identity.created,
            request: accepted,
            restarts: identity.restarts,
            store: self.store.clone(),
            objects,
            stop: transmitter.stop_handle(),
            live: transmitter.live_stats(),
            status: Mutex::new(Status {
                state: SessionState::Scheduled,
                started_at: None,
                finished_at: None,
                error: None,
            }),
            spec,
        });
        {
            let mut list = self.list_guard();
            for gone in prune(&mut list) {
                if let Some(store) = &self.store {
                    let _ = store.remove(&gone);
                }
            }
            list.push(session.clone());
        }
        // On disk before its thread can write a later state.
        session.save();
        let prepared = Prepared {
            transmitter,
            objects: specs,
        };
        if let Err(e) = runner::spawn(session.clone(), prepared) {
            {
                let mut status = session.status();
                status.state = SessionState::Failed;
                status.finished_at = Some(unix_now());
                status.error = Some(format!("starting the session thread: {e}"));
            }
            session.save();
        }
        tracing::info!(
            session = %session.id,
            tsi = session.spec.tsi,
            group = %session.spec.group,
            objects = session.objects.len(),
            "broadcast session scheduled"
        );
        Ok(session)
    }
}

/// An object planned for a session: its record, layout (and whether it
/// is the stored one), bytes and, for a delta, its FDT attributes.
type Planned = (ObjectRecord, Oti, bool, BlobCursor, Option<FdtDelta>);

impl SessionRegistry {
    /// The object or delta with this id: the record to send and, for a
    /// delta, its record and FDT attributes.
    fn lookup(&self, id: &str) -> Result<(ObjectRecord, PlannedDelta), SessionError> {
        match self.repo.get(id) {
            Ok(r) if r.state == State::Withdrawn => {
                return Err(SessionError::UnknownObject(id.to_owned()));
            }
            // A damaged object is refused (410) until it is uploaded again.
            Ok(r) => return Ok((self.repo.get_served(&r.id)?, None)),
            Err(RepoError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let Some(store) = &self.deltas else {
            return Err(SessionError::UnknownObject(id.to_owned()));
        };
        let Some((delta, target)) = store.served(&self.repo, id)? else {
            return Err(SessionError::UnknownObject(id.to_owned()));
        };
        let fdt = self.fdt_delta(&delta, &target)?;
        Ok((
            delta.as_object(&target, self.repo.urls()),
            Some((delta, fdt)),
        ))
    }

    fn fdt_delta(
        &self,
        delta: &DeltaRecord,
        target: &ObjectRecord,
    ) -> Result<FdtDelta, SessionError> {
        Ok(FdtDelta {
            base_sha256: delta.base()?,
            target_sha256: sha_bytes(&target.sha256)?,
            target_manifest: Some(self.repo.urls().manifest_uri(&target.id)),
        })
    }

    /// The stored deltas to `target` that the session asks for.
    fn session_deltas(
        &self,
        target: &ObjectRecord,
        spec: &SessionSpec,
    ) -> Result<Vec<DeltaRecord>, SessionError> {
        let Some(store) = &self.deltas else {
            return Ok(Vec::new());
        };
        let mut bases = spec.delta_from.clone();
        if spec.delta_previous
            && let Some(previous) = previous_version(&self.repo, target)?
        {
            bases.insert(0, sha_bytes(&previous.sha256)?);
        }
        let mut out: Vec<DeltaRecord> = Vec::new();
        for base in bases {
            match store.record_from(&self.repo, target, &base)? {
                Some(d) if !out.iter().any(|o| o.id == d.id) => out.push(d),
                Some(_) => {}
                None => tracing::info!(
                    target = %target.id,
                    base = %hex::encode(base),
                    "no stored delta from this base: not sent"
                ),
            }
        }
        Ok(out)
    }

    /// Plans one object: layout, and its bytes opened.
    fn plan(
        &self,
        record: ObjectRecord,
        delta: PlannedDelta,
        spec: &SessionSpec,
    ) -> Result<Planned, SessionError> {
        let (oti, stored_layout) = layout(&record, spec)?;
        let blob: Box<dyn BlobReader> = match (&delta, &self.deltas) {
            (Some((rec, _)), Some(store)) => store.open_delta(rec)?,
            _ => self.repo.open_blob(&record)?,
        };
        if blob.len() != record.size {
            return Err(SessionError::Repo(RepoError::Io(std::io::Error::other(
                format!(
                    "the blob of {} has {} bytes, not {}",
                    record.id,
                    blob.len(),
                    record.size
                ),
            ))));
        }
        let fdt = delta.map(|(_, fdt)| fdt);
        Ok((record, oti, stored_layout, BlobCursor::new(blob), fdt))
    }
}

/// A delta's record and FDT attributes, for a planned delta.
type PlannedDelta = Option<(DeltaRecord, FdtDelta)>;

/// The latest active version of `target`'s name published before it,
/// with other content.
fn previous_version(
    repo: &Repository,
    target: &ObjectRecord,
) -> Result<Option<ObjectRecord>, RepoError> {
    Ok(repo
        .history(&target.name)?
        .into_iter()
        .filter(|r| r.seq < target.seq && r.state == State::Active && r.sha256 != target.sha256)
        .max_by_key(|r| r.seq))
}

/// Drops the oldest ended sessions beyond [`KEEP_ENDED`].
/// Drops the oldest ended sessions beyond [`KEEP_ENDED`]; returns their
/// ids.
fn prune(list: &mut Vec<Arc<Session>>) -> Vec<String> {
    let ended = list.iter().filter(|s| !s.state().is_active()).count();
    let mut excess = ended.saturating_sub(KEEP_ENDED - 1);
    let mut gone = Vec::new();
    list.retain(|s| {
        if excess > 0 && !s.state().is_active() {
            excess -= 1;
            gone.push(s.id.clone());
            false
        } else {
            true
        }
    });
    gone
}

/// Who a session is: new, or resumed after a restart.
struct Resume {
    id: String,
    created: u64,
    restarts: u32,
}

/// The sender's priority: higher goes first.
fn priority_rank(p: Priority) -> u8 {
    match p {
        Priority::Critical => 3,
        Priority::High => 2,
        Priority::Normal => 1,
        Priority::Low => 0,
    }
}

fn sha_bytes(hex_sha: &str) -> Result<[u8; 32], SessionError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_sha, &mut out).map_err(|_| {
        SessionError::Repo(RepoError::Invalid(format!("bad stored hash {hex_sha}")))
    })?;
    Ok(out)
}

/// The FEC layout to send `record` in: its stored one when the session's
/// FEC and symbol size match it, else a fresh plan (unicast repair, which
/// answers in the stored layout, then does not fit that session).
fn layout(record: &ObjectRecord, spec: &SessionSpec) -> Result<(Oti, bool), SessionError> {
    let stored = Repository::oti(record)?;
    let scheme = spec.fec.scheme();
    let t = spec.symbol_size.unwrap_or(stored.symbol_size());
    if stored.scheme() == scheme && stored.symbol_size() == t {
        return Ok((stored, true));
    }
    let oti = Oti::for_object(scheme, record.size, t, BlockSize::default())
        .map_err(|e| SessionError::Invalid(format!("object {}: FEC layout: {e}", record.id)))?;
    Ok((oti, false))
}

/// Adds the objects to a throwaway sender with the session's
/// configuration (sources of zeros: adding reads only their length), so
/// what the sender would refuse later — a symbol that does not fit the
/// datagrams, the repair cache budget — is refused now, as a 400.
fn dry_run(config: &SenderConfig, planned: &[Planned], repair: u32) -> Result<(), SessionError> {
    let mut sender = Sender::new(config.clone())
        .map_err(|e| SessionError::Invalid(format!("FLUTE session: {e}")))?;
    for (record, oti, ..) in planned {
        let mut object = ObjectSpec::new(record.id.clone(), Zeros::new(record.size));
        object.oti = Some(*oti);
        object.fec = oti.scheme();
        object.symbol_size = oti.symbol_size();
        object.repair_percent = repair;
        sender
            .add_object(object)
            .map_err(|e| SessionError::Invalid(format!("object {}: {e}", record.id)))?;
    }
    Ok(())
}

/// `len` zero bytes, seekable.
struct Zeros {
    len: u64,
    pos: u64,
}

impl Zeros {
    fn new(len: u64) -> Self {
        Self { len, pos: 0 }
    }
}

impl std::io::Read for Zeros {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = usize::try_from(self.len.saturating_sub(self.pos))
            .unwrap_or(usize::MAX)
            .min(buf.len());
        buf[..n].fill(0);
        self.pos += n as u64;
        Ok(n)
    }
}

impl std::io::Seek for Zeros {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        self.pos = match to {
            std::io::SeekFrom::Start(p) => Some(p),
            std::io::SeekFrom::End(d) => self.len.checked_add_signed(d),
            std::io::SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        }
        .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        Ok(self.pos)
    }
}

/// The transmitter for a session, with its socket open (a bad interface
/// is refused here, before the session exists).
/// FDT transmissions a session makes at the least, over its expected
/// duration.
const FDT_REPEATS: u32 = 8;

fn transmitter(
    spec: &SessionSpec,
    transported: u64,
    objects: usize,
) -> Result<Transmitter, SessionError> {
    let bits = transported as f64 * 8.0 * (1.0 + f64::from(spec.repair) / 100.0);
    // (Saturating: a huge session at a tiny rate must not overflow.)
    let expected =
        Duration::try_from_secs_f64(bits * f64::from(spec.carousel) / spec.rate_bps.max(1) as f64)
            .unwrap_or(Duration::MAX);
    let wait = spec.start_at.map_or(0, |at| at.saturating_sub(unix_now()));
    let mut config = SenderConfig::new(
        spec.tsi,
        ntp_expires(expected.saturating_add(Duration::from_secs(3600_u64.saturating_add(wait)))),
    );
    config.carousel_rounds = spec.carousel;
    // A UE that misses every FDT cannot name what it received: even a
    // short session repeats its FDT at least FDT_REPEATS times (the default
    // interval, 1 s, stays the longest; 20 ms the shortest).
    config.fdt_interval = config
        .fdt_interval
        .min(expected / FDT_REPEATS)
        .max(Duration::from_millis(20));
    // With several rounds each block's repair symbols are kept so it is
    // encoded once: room for all of them, plus a symbol per block (at most
    // 256 RaptorQ blocks) for rounding up.
    let rounding = objects as u64 * 256 * u64::from(super::request::MAX_SYMBOL_SIZE);
    config.repair_cache_bytes = config
        .repair_cache_bytes
        .max((u128::from(transported) * u128::from(spec.repair) / 100) as u64 + rounding);
    let sender =
        Sender::new(config).map_err(|e| SessionError::Invalid(format!("FLUTE session: {e}")))?;
    let mut transmit = TransmitConfig::new(spec.group);
    transmit.socket.interface = spec.iface;
    transmit.rate_bps = spec.rate_bps;
    Transmitter::new(sender, transmit).map_err(|e| SessionError::Invalid(e.to_string()))
}
