//! Late join: a UE that missed the whole broadcast, or started after it,
//! learns the session's objects from its peers and completes them by
//! repair alone.
//!
//! With [`AgentConfig::late_join_after`](super::AgentConfig::late_join_after)
//! set and peers configured, once that long has passed since the start
//! with no broadcast object seen, the agent asks every connected peer
//! which objects it holds ([`PeerNode::objects_of`]). Each announcement's
//! signed manifest is verified with the origin key (one that does not
//! verify, or whose announced Content-Location and manifest URI do not
//! name the signed object, is skipped); without an origin key an announcement is accepted
//! only if it gives the object's SHA-256, which the receiver then checks,
//! unauthenticated. Up to [`AgentConfig::count`](super::AgentConfig::count)
//! objects are adopted by the receiver ([`Control::adopt`]) under
//! [`ADOPTED_TSI`] (or the receiver's TSI filter) and TOIs from
//! [`ADOPTED_TOI_BASE`] up, numbers no broadcast uses, and announced
//! onward; the usual repair then runs after the back-off: peers first,
//! then the repair service (when none was given, `{base}/repair` derived
//! from a verified manifest's `{base}/manifest/{id}` URI), then the whole
//! download. While nothing is learned, peers are asked again every
//! second.
//!
//! A broadcast that starts after objects were adopted is received as
//! well, under its own TSI and TOIs; a copy of an object already
//! delivered is neither counted again nor repaired.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use dms_repair::download::file_name;
use dms_repair::manifest::{ManifestBody, SignedManifest};
use sha2::{Digest, Sha256};

use super::AgentConfig;
use super::repair::Repairer;
use crate::p2p::ObjectAnnouncement;
use crate::receive::{
    ADOPTED_TOI_BASE, ADOPTED_TSI, AdoptError, AdoptedObject, Control, ManifestCheck,
};

/// Pause before peers are asked again when they had nothing to adopt.
const RETRY: Duration = Duration::from_secs(1);

/// TOIs tried past [`ADOPTED_TOI_BASE`] before adopting gives up.
const MAX_TOIS: u128 = 1 << 16;

/// The late-join state of an agent.
pub(super) struct LateJoin {
    /// When peers are next asked; `None` once disarmed.
    at: Option<Instant>,
    /// The session adopted objects are kept under.
    tsi: u64,
    /// The next adopted object's TOI.
    next_toi: u128,
    /// Content-Locations adopted so far.
    adopted: HashSet<String>,
    /// Announcements not trusted, by Content-Location and SHA-256 of
    /// their manifest: not looked at again, so each is logged once (and a
    /// bad one does not hide a good one of the same object).
    skipped: HashSet<(String, [u8; 32])>,
}

impl LateJoin {
    /// Armed for `config.late_join_after` after `started`, when peers
    /// may be found.
    pub(super) fn new(config: &AgentConfig, started: Instant) -> Self {
        let with_peers = !config.peers.is_empty() || config.mdns;
        LateJoin {
            at: config
                .late_join_after
                .filter(|_| with_peers)
                .map(|after| started + after),
            tsi: config.receive.flute.tsi.unwrap_or(ADOPTED_TSI),
            next_toi: ADOPTED_TOI_BASE,
            adopted: HashSet::new(),
            skipped: HashSet::new(),
        }
    }

    /// When [`LateJoin::check`] is next due.
    pub(super) fn due(&self) -> Option<Instant> {
        self.at
    }

    /// Once due: without any broadcast object seen (`seen_broadcast`),
    /// asks the peers and adopts up to `wanted` objects; returns how many
    /// were adopted (the caller then schedules repair). With a broadcast
    /// object seen, or once something was adopted, it is disarmed.
    pub(super) fn check(
        &mut self,
        repairer: &mut Repairer,
        control: &Control,
        seen_broadcast: bool,
        wanted: u64,
    ) -> usize {
        if seen_broadcast {
            self.at = None;
            return 0;
        }
        let adopted = self.learn(repairer, control, wanted);
        self.at = (adopted == 0).then(|| Instant::now() + RETRY);
        adopted
    }

    /// Asks every connected peer for its objects and adopts them.
    fn learn(&mut self, repairer: &mut Repairer, control: &Control, wanted: u64) -> usize {
        let Some(node) = repairer.peer_node() else {
            return 0;
        };
        let announcements: Vec<ObjectAnnouncement> = repairer.block_on(async {
            let mut all = Vec::new();
            for peer in node.peers().await {
                match node.objects_of(peer).await {
                    Ok(objects) => all.extend(objects),
                    Err(e) => tracing::debug!(%peer, "asking for objects: {e}"),
                }
            }
            all
        });
        let mut count = 0;
        for a in announcements {
            if self.adopted.len() as u64 >= wanted {
                break;
            }
            let seen = (
                a.content_location.clone(),
                Sha256::digest(&a.manifest).into(),
            );
            if self.adopted.contains(&a.content_location) || self.skipped.contains(&seen) {
                continue;
            }
            let Some((object, body)) = accept(repairer, &a) else {
                self.skipped.insert(seen);
                continue;
            };
            // A TOI may be taken by an object resumed from a state
            // directory: the next one is tried.
            let adopted = loop {
                let toi = self.next_toi;
                self.next_toi += 1;
                match control.adopt(self.tsi, toi, object.clone()) {
                    Err(AdoptError::InUse { .. }) if toi < ADOPTED_TOI_BASE + MAX_TOIS => {}
                    other => break other.map(|_| toi),
                }
            };
            let toi = match adopted {
                Ok(toi) => toi,
                Err(e) => {
                    tracing::warn!(location = %a.content_location, "not adopted: {e}");
                    continue;
                }
            };
            count += 1;
            self.adopted.insert(a.content_location.clone());
            if let Some(body) = &body {
                control.set_manifest(
                    self.tsi,
                    toi,
                    ManifestCheck {
                        size: body.size,
                        sha256: body.sha256,
                        block_sha256: body.block_sha256.clone(),
                    },
                );
                if let Some(base) = a
                    .manifest_uri
                    .as_deref()
                    .and_then(|uri| uri.rsplit_once("/manifest/"))
                    .map(|(base, _)| base)
                {
                    repairer.repair_uri_if_none(format!("{base}/repair"));
                }
            }
            tracing::info!(
                location = %a.content_location,
                tsi = self.tsi,
                %toi,
                manifest_verified = body.is_some(),
                "learned an object from peers"
            );
            repairer.learned(
                (self.tsi, toi),
                a.content_location.clone(),
                a.manifest_uri.clone(),
                body,
            );
            // Other late joiners learn it from us too.
            node.announce(a);
        }
        count
    }
}

/// Whether an announced Content-Location (the object's download URI,
/// `{base}/dl/{id}/{file name}`) and manifest URI (`{base}/manifest/{id}`)
/// name the object `body` signs.
fn names_signed_object(location: &str, manifest_uri: Option<&str>, body: &ManifestBody) -> bool {
    let download = format!("/dl/{}/{}", body.id, file_name(&body.name));
    let manifest = format!("/manifest/{}", body.id);
    location.ends_with(&download) && manifest_uri.is_none_or(|uri| uri.ends_with(&manifest))
}

/// What to adopt of announcement `a`, with its verified manifest; `None`
/// if it cannot be trusted enough.
fn accept(
    repairer: &Repairer,
    a: &ObjectAnnouncement,
) -> Option<(AdoptedObject, Option<ManifestBody>)> {
    let location = &a.content_location;
    let Some(key) = repairer.origin_key() else {
        let Some(sha256) = a.sha256 else {
            tracing::warn!(%location, "skipped: no origin key and no SHA-256 announced");
            return None;
        };
        tracing::warn!(
            %location,
            "no origin key: accepted on the peer's word, checked against the announced SHA-256 only"
        );
        let mut object = AdoptedObject::new(location.clone(), a.content_length, a.oti);
        object.sha256 = Some(sha256);
        object.manifest_uri.clone_from(&a.manifest_uri);
        object.content_type.clone_from(&a.content_type);
        object.content_encoding.clone_from(&a.content_encoding);
        return Some((object, None));
    };
    let body = match SignedManifest::from_json(&a.manifest).and_then(|m| m.verify(&key)) {
        Ok(body) => body,
        Err(e) => {
            tracing::warn!(%location, "skipped: its manifest does not verify: {e}");
            return None;
        }
    };
    // The Content-Location and manifest URI are the peer's word: they must
    // name the signed object, or a peer could have verified bytes saved
    // under another object's name, or send repair requests elsewhere.
    if !names_signed_object(location, a.manifest_uri.as_deref(), &body) {
        tracing::warn!(%location, id = %body.id, "skipped: the announced locations do not name the signed object");
        return None;
    }
    // The signed facts win over the announced ones.
    let mut object = AdoptedObject::new(location.clone(), body.size, body.oti);
    object.sha256 = Some(body.sha256);
    object.manifest_uri.clone_from(&a.manifest_uri);
    Some((object, Some(body)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

    use super::*;

    fn body(id: &str, name: &str) -> ManifestBody {
        ManifestBody {
            id: id.into(),
            name: name.into(),
            version: "1.0.0".into(),
            size: 1000,
            sha256: [1; 32],
            oti: dms_fec::Oti::for_object(
                dms_fec::FecScheme::RaptorQ,
                1000,
                1400,
                dms_fec::BlockSize::Symbols(16),
            )
            .unwrap(),
            block_sha256: vec![[2; 32]],
            delta: None,
        }
    }

    #[test]
    fn announced_locations_must_name_the_signed_object() {
        let signed = body("ab12", "fw image.bin");
        let good = "https://o.example/dl/ab12/fw_image.bin";
        let manifest = "https://o.example/manifest/ab12";
        assert!(names_signed_object(good, Some(manifest), &signed));
        assert!(names_signed_object(good, None, &signed));
        // Another object's name, another id, another manifest.
        let renamed = "https://o.example/dl/ab12/bootloader.bin";
        assert!(!names_signed_object(renamed, Some(manifest), &signed));
        let other_id = "https://o.example/dl/cd34/fw_image.bin";
        assert!(!names_signed_object(other_id, Some(manifest), &signed));
        let elsewhere = "https://evil.example/manifest/cd34";
        assert!(!names_signed_object(good, Some(elsewhere), &signed));
    }
}
